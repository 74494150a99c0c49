"""The active-learning driver: trials of train -> evaluate -> acquire cycles, crash-safe."""
from __future__ import annotations

import copy
import gc
import os
import os.path as osp
import shutil
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dist import barrier, broadcast_object_list, get_rank, get_world_size
from mmengine.registry import VISBACKENDS, init_default_scope
from mmengine.runner import Runner

from .. import compat
from ..datasets.errors import build_dataset
from ..engine.acquisition import AcquisitionService, is_unreadable
from ..engine.hooks import scoring_model, scoring_pipeline
from ..errors import UserError
from ..fileio import commit, temp_path
from ..report import Run, choose_metric, markdown_table, summarise
from .settings import ALSettings
from .state import RunState

VOC_LAYOUT = ('VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main/trainval.txt,test.txt} '
              '(and VOC2012 likewise for VOC07+12; PASCAL VOC is at host.robots.ox.ac.uk/pascal/VOC)')


def with_pipeline(dataset_cfg: dict, pipeline: list) -> dict:
    """A copy of a dataset config whose (nested) datasets all use ``pipeline``."""
    cfg = copy.deepcopy(dataset_cfg)
    if 'datasets' in cfg:
        cfg['datasets'] = [with_pipeline(d, pipeline) for d in cfg['datasets']]
    elif 'dataset' in cfg:
        cfg['dataset'] = with_pipeline(cfg['dataset'], pipeline)
    else:
        cfg['pipeline'] = pipeline
    return cfg


def data_roots(dataset_cfg: dict) -> List[Tuple[str, str]]:
    """``(data_root, expected layout)`` of every leaf of a (nested) dataset config."""
    if 'datasets' in dataset_cfg:
        return [r for d in dataset_cfg['datasets'] for r in data_roots(d)]
    if 'dataset' in dataset_cfg:
        return data_roots(dataset_cfg['dataset'])
    if not dataset_cfg.get('data_root'):
        return []
    cls = DATASETS.get(dataset_cfg['type']) if isinstance(dataset_cfg.get('type'), str) else dataset_cfg.get('type')
    hint = cls.layout_hint() if hasattr(cls, 'layout_hint') else VOC_LAYOUT
    return [(dataset_cfg['data_root'], hint)]


class CycleConfig(Config):
    """A cycle's config, whose text is formatted once.

    mmengine formats the whole config with yapf (about 0.4 s) on every dump, log line and
    checkpoint: seven times per cycle. A cycle's config does not change once its runner exists, so
    the first formatting is kept.
    """

    @property
    def pretty_text(self) -> str:
        text = self.__dict__.get('_mmal_text')  # (Config stores plain attributes in the config itself)
        if text is None:
            text = super().pretty_text
            object.__setattr__(self, '_mmal_text', text)
        return text


def check_checkpoint(path: str, fix: str) -> None:
    """Fail with one sentence when the checkpoint ``path`` cannot be loaded (truncated, damaged).

    Args:
        path: The checkpoint.
        fix: What to do about it, ending the sentence.
    """
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read it means the file is damaged
        raise UserError(f'{path} cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0]}); delete it and '
                        f'{fix}.') from None


class ActiveLearningLoop:
    """Runs the experiment an mmdet-style config describes in its ``active_learning`` section.

    Args:
        cfg: The config; its ``train_dataloader.dataset`` is the pool.
        work_dir: Where state, checkpoints and ``results.csv`` go.
        resume: Continue the run in ``work_dir`` from its last completed step.
        launcher: ``'none'`` or ``'pytorch'`` (torchrun).
        progress: Show progress bars.
    """

    def __init__(self, cfg: Config, work_dir: str, resume: bool = False, launcher: str = 'none',
                 progress: bool = True) -> None:
        self.cfg, self.work_dir, self.resume, self.launcher, self.progress = cfg, work_dir, resume, launcher, progress
        self.al = ALSettings.from_cfg(cfg)
        if self.al.semi_supervised is not None and cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
            raise UserError('active_learning.semi_supervised needs train_cfg = dict(type=\'IterBasedTrainLoop\', ...): '
                            'its batches come from an endless stream of labeled and unlabeled images.')
        init_default_scope(cfg.get('default_scope', 'mmdet'))  # the pool is built before any Runner
        self.state = RunState(work_dir)
        self.pool_cfg = cfg.train_dataloader.dataset.to_dict()
        for root, layout in data_roots(self.pool_cfg) + data_roots(dict(cfg.test_dataloader.dataset)):
            if not osp.isdir(root):
                raise UserError(f'the data root {root} does not exist; put the dataset there in the layout '
                                f'{layout} or point data_root elsewhere with --cfg-options.')
        self.is_main = get_rank() == 0

    # -- the experiment ------------------------------------------------------------------------
    def run(self) -> List[Dict]:
        """Run (or finish) every trial; returns the rows of ``results.csv``.

        Everything that can be checked is checked before the work dir is touched: the pool can be
        read, the initial labeled set fits it, the model can give what the scorer and selector
        read, and the work dir is free, ours, and (on ``--resume``) of the same config.
        """
        self.pool = build_dataset(self.pool_cfg)  # a pool that cannot be read stops the run before any write
        self.al.initial_count(len(self.pool))
        service = self._service(0, 0)
        service.check_model(MODELS.build(copy.deepcopy(self.cfg.model)))
        cfg_dict = self.cfg.to_dict()
        self._on_main(lambda: self._claim_work_dir(cfg_dict))
        try:
            self._scoring_pool = None
            rows: List[Dict] = []
            for trial in range(self.al.num_trials):
                self.run_trial(trial)
                rows = self.state.write_results() if self.is_main else rows
            return rows
        finally:
            self.state.unlock()

    def _claim_work_dir(self, cfg_dict: dict) -> None:
        """Rank 0: lock the work dir, check it may be used, then record the config."""
        existed = osp.isdir(self.work_dir)
        self.state.lock()
        try:
            self.state.check_work_dir(cfg_dict, self.resume)
        except BaseException:
            self.state.unlock()
            if not existed:
                os.rmdir(self.work_dir)
            raise
        for path in self.state.remove_stale_temp_files():
            print(f'[al] removed {path}, left by an interrupted write')
        self.state.record_config(cfg_dict, self.cfg.filename or '<config>', metric=self.al.metric,
                                 scorer=(self.al.scorer or {}).get('type') or
                                 (self.al.selection or {}).get('type', 'selection'))

    def _on_main(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on rank 0; a ``UserError`` it raises is raised on every rank."""
        error = None
        if self.is_main:
            try:
                fn()
            except UserError as err:
                error = str(err)
        if get_world_size() > 1:
            box = [error]
            broadcast_object_list(box, src=0)
            error = box[0]
        if error is not None:
            raise UserError(error)

    def run_trial(self, trial: int) -> None:
        pool_size = len(self.pool)
        gen = torch.Generator().manual_seed(self.al.seed + 1000 * trial)
        labeled = sorted(torch.randperm(pool_size, generator=gen)[:self.al.initial_count(pool_size)].tolist())
        for cycle in range(self.al.num_cycles):
            if cycle > 0:
                previous = self.state.read(trial, cycle - 1, 'selected.json')
                if not previous['indices']:
                    if self.is_main:
                        print(f'[al] trial {trial}: nothing is left to label after cycle {cycle - 1} ({len(labeled)} '
                              f'labeled, {len(previous.get("unreadable", []))} unreadable); the trial ends there.')
                    return
                labeled = sorted(set(labeled) | set(previous['indices']))
            self.run_cycle(trial, cycle, labeled)

    def run_cycle(self, trial: int, cycle: int, labeled: List[int]) -> None:
        """One cycle; each completed step (file) is skipped on resume."""
        state, last = self.state, cycle == self.al.num_cycles - 1
        # Ranks decide from the files on disk: every rank reads them between the same barriers, and
        # only rank 0 writes.
        barrier()
        recorded = state.read(trial, cycle, 'labeled.json')
        barrier()
        if recorded is None and self.is_main:
            state.write(trial, cycle, 'labeled.json', dict(
                trial=trial, cycle=cycle, num_labeled=len(labeled), seed=self.al.cycle_seed(trial, cycle),
                indices=labeled, image_ids=[str(self.pool.get_data_info(i).get('img_id', i)) for i in labeled]))
        barrier()
        if recorded is not None and recorded['indices'] != labeled:
            raise UserError(f'{state.path(trial, cycle, "labeled.json")} disagrees with the state before it; '
                            'the work dir was changed by hand: start a new --work-dir.')
        start = time.time()
        runner = None
        model_path = state.path(trial, cycle, 'model.pth')
        if not osp.isfile(model_path):
            runner = self._train(trial, cycle)
        else:
            check_checkpoint(model_path, f'run again with --resume to retrain trial {trial} cycle {cycle}')
        metrics = state.read(trial, cycle, 'metrics.json')
        if metrics is None:
            runner = runner or self._runner(trial, cycle, load_from=model_path)
            results = runner.test()
            metrics = dict(trial=trial, cycle=cycle, num_labeled=len(labeled),
                           metrics={k: float(v) for k, v in results.items()})
            if self.is_main:
                state.write(trial, cycle, 'metrics.json', metrics)
                self._log_scalars(trial, metrics)
                self._print_table(state.write_results())
        train_seconds = time.time() - start
        start = time.time()
        if not last and state.read(trial, cycle, 'selected.json') is None:
            runner = runner or self._runner(trial, cycle, load_from=model_path)
            runner.load_or_resume()  # no-op when the model was trained or tested in this runner
            self._acquire(trial, cycle, labeled, runner)
            barrier()  # selected.json is on disk for every rank
        main = self.al.metric or next(iter(metrics['metrics']), None)
        value = metrics['metrics'].get(main, float('nan')) if main else float('nan')
        if self.is_main:
            print(f'[al] trial {trial} cycle {cycle}: {len(labeled)} labeled, {main} {value:.4f} '
                  f'(train+eval {train_seconds:.0f} s, acquisition {time.time() - start:.0f} s)', flush=True)
        del runner
        gc.collect()

    # -- what the user sees ----------------------------------------------------------------------------
    def _print_table(self, rows: List[Dict]) -> None:
        """The results so far: mean ± std over trials per labeled count."""
        name = osp.splitext(osp.basename(self.cfg.filename or 'run'))[0]
        run = Run(name=name, work_dir=self.work_dir, rows=rows, metric=self.al.metric)
        metric = choose_metric([run])
        print('[al] results so far, ' + markdown_table(summarise([run], metric), metric), flush=True)

    def _log_scalars(self, trial: int, metrics: Dict) -> None:
        """Each cycle's test metrics against the labeled count, through the config's visualizer
        backends (``LocalVisBackend`` writes ``<work_dir>/vis_data/scalars.json``; add
        ``dict(type='TensorboardVisBackend')`` to ``visualizer.vis_backends`` for TensorBoard)."""
        backends = self.cfg.get('visualizer', {}).get('vis_backends') or [dict(type='LocalVisBackend')]
        scalars = {f'al/trial_{trial}/{k}': v for k, v in metrics['metrics'].items()}
        for backend_cfg in backends:
            backend = VISBACKENDS.build({**backend_cfg, 'save_dir': osp.join(self.work_dir, 'vis_data')})
            backend.add_scalars(scalars, step=metrics['num_labeled'])
            backend.close()

    # -- steps --------------------------------------------------------------------------------------
    def _runner(self, trial: int, cycle: int, load_from: Optional[str] = None) -> Runner:
        cfg = CycleConfig(copy.deepcopy(self.cfg.to_dict()), filename=self.cfg.filename)
        cfg.pop('active_learning', None)
        cfg.work_dir = osp.join(self.state.cycle_dir(trial, cycle), 'train')
        cfg.experiment_name = f'trial{trial}_cycle{cycle}_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}'
        cfg.train_dataloader.dataset = dict(type='IndexSubset', dataset=self.pool_cfg,
                                            indices_file=self.state.path(trial, cycle, 'labeled.json'))
        cfg.randomness = dict(seed=self.al.cycle_seed(trial, cycle))
        cfg.resume = False
        cfg.load_from = load_from
        if self.al.semi_supervised is not None:
            self._semi_supervised_training_set(cfg, trial, cycle)
        if self.progress:
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='TrainProgressHook')]
        compat.distributed_cfg(cfg, self.launcher)
        return Runner.from_cfg(cfg)

    def _semi_supervised_training_set(self, cfg: Config, trial: int, cycle: int) -> None:
        """Train on the labeled images and the unlabeled rest of the pool, mixed in every batch."""
        ssl = self.al.semi_supervised
        unlabeled = with_pipeline(self.pool_cfg, ssl['unlabeled_pipeline']) if ssl.get('unlabeled_pipeline') else None
        cfg.train_dataloader.dataset = dict(type='SemiSupervisedSubset', dataset=self.pool_cfg,
                                            unlabeled_dataset=unlabeled, unlabeled_views=ssl.get('unlabeled_views', 1),
                                            indices_file=self.state.path(trial, cycle, 'labeled.json'))
        cfg.train_dataloader.sampler = dict(type='LabeledRatioSampler', batch_size=cfg.train_dataloader.batch_size,
                                            labeled_ratio=ssl.get('labeled_ratio', 0.5))
        cfg.train_dataloader.batch_sampler = None  # grouping by aspect ratio would undo the mix

    def _train(self, trial: int, cycle: int) -> Runner:
        """Train the cycle's model from the start and save it atomically as ``model.pth``.

        A training interrupted before it finished is started over rather than resumed from its
        last checkpoint: mmengine does not restore the random state, and only a full rerun gives
        the same model, hence the same acquisitions, as an uninterrupted run.
        """
        train_dir = osp.join(self.state.cycle_dir(trial, cycle), 'train')
        if self.is_main and osp.isdir(train_dir):
            shutil.rmtree(train_dir)
        barrier()
        load_from = None
        if self.al.retrain == 'finetune' and cycle > 0:
            load_from = self.state.path(trial, cycle - 1, 'model.pth')
        runner = self._runner(trial, cycle, load_from=load_from)
        try:
            runner.train()
        except Exception as err:  # noqa: BLE001 - only unreadable training images are turned into a sentence
            if not is_unreadable(err):
                raise
            raise UserError(f'a training image of trial {trial} cycle {cycle} cannot be read ({type(err).__name__}: '
                            f'{err}); fix or remove that file, then run again with --resume.') from None
        if self.is_main:
            final = self.state.path(trial, cycle, 'model.pth')
            tmp = temp_path(final)
            runner.save_checkpoint(osp.dirname(tmp), osp.basename(tmp), save_optimizer=False,
                                   save_param_scheduler=False)
            commit(tmp, final)
        barrier()
        return runner

    def _service(self, trial: int, cycle: int) -> AcquisitionService:
        """The acquisition of (trial, cycle), seeded with the cycle's seed."""
        al = self.al
        return AcquisitionService(al.scorer, al.selection, al.adapter, seed=al.cycle_seed(trial, cycle),
                                  batch_size=al.batch_size, num_workers=al.num_workers, progress=self.progress)

    def scoring_pool(self):
        """The pool with the test pipeline minus annotation loading (built once per run)."""
        if self._scoring_pool is None:
            pipeline = scoring_pipeline(self.cfg.test_dataloader.dataset.pipeline)
            self._scoring_pool = build_dataset(with_pipeline(self.pool_cfg, pipeline))
        return self._scoring_pool

    def _acquire(self, trial: int, cycle: int, labeled: List[int], runner: Runner) -> None:
        budget = self.al.budget_at(cycle)
        unlabeled = len(self.pool) - len(labeled)
        if budget > unlabeled and self.is_main:
            print(f'[al] budget {budget} exceeds the {unlabeled} unlabeled images; taking all of them.')
        result = self._service(trial, cycle).run(scoring_model(runner), self.scoring_pool(), labeled, budget)
        if not self.is_main:
            return
        info = self.pool.get_data_info
        for index, error in result.unreadable.items():
            print(f'[al] skipped unreadable pool image {info(index).get("img_path", index)}: {error}')
        self.state.write(trial, cycle, 'selected.json', dict(
            trial=trial, cycle=cycle, scorer=self.al.scorer, selection=self.al.selection,
            num_candidates=result.num_candidates, indices=result.picks,
            image_ids=[str(info(i).get('img_id', i)) for i in result.picks], scores=result.scores,
            unreadable=[dict(index=i, image_id=str(info(i).get('img_id', i)), error=e)
                        for i, e in result.unreadable.items()]))
