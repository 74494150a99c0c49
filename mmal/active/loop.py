"""The active-learning driver: trials of train -> evaluate -> acquire cycles, crash-safe."""
from __future__ import annotations

import copy
import gc
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.dist import all_gather_object, barrier, get_rank, get_world_size
from mmengine.model import is_model_wrapper
from mmengine.registry import VISBACKENDS, init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from .. import compat
from ..engine.acquisition import build_adapter, pool_loader, score_pool
from ..engine.hooks import scoring_pipeline
from ..errors import UserError
from ..registry import SCORERS
from ..report import Run, choose_metric, markdown_table, summarise
from ..selection import k_center_greedy, random_subset
from .settings import ALSettings
from .state import RunState, config_fingerprint

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
        """Run (or finish) every trial; returns the rows of ``results.csv``."""
        fingerprint = config_fingerprint(self.cfg.to_dict())
        self.state.check_config(fingerprint, self.resume)  # every rank, before rank 0 records
        self.pool = DATASETS.build(self.pool_cfg)  # a pool that cannot be read stops the run before any write
        if hasattr(self.pool, 'full_init'):
            self.pool.full_init()
        barrier()
        if self.is_main:
            self.state.record_config(fingerprint, self.cfg.filename or '<config>', scorer=self.al.scorer['type'],
                                     metric=self.al.metric)
        barrier()
        rows: List[Dict] = []
        for trial in range(self.al.num_trials):
            self.run_trial(trial)
            rows = self.state.write_results() if self.is_main else rows
        return rows

    def run_trial(self, trial: int) -> None:
        pool_size = len(self.pool)
        gen = torch.Generator().manual_seed(self.al.seed + 1000 * trial)
        labeled = sorted(torch.randperm(pool_size, generator=gen)[:self.al.initial_count(pool_size)].tolist())
        for cycle in range(self.al.num_cycles):
            if cycle > 0:
                previous = self.state.read(trial, cycle - 1, 'selected.json')
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
        cfg = copy.deepcopy(self.cfg)
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
        runner.train()
        if self.is_main:
            tmp = 'model.pth.tmp'
            runner.save_checkpoint(self.state.cycle_dir(trial, cycle), tmp, save_optimizer=False,
                                   save_param_scheduler=False)
            os.replace(osp.join(self.state.cycle_dir(trial, cycle), tmp), self.state.path(trial, cycle, 'model.pth'))
        barrier()
        return runner

    def _acquire(self, trial: int, cycle: int, labeled: List[int], runner: Runner) -> None:
        al = self.al
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        scorer_cfg = dict(al.scorer)
        if scorer_cfg['type'] == 'Random':
            scorer_cfg.setdefault('seed', al.cycle_seed(trial, cycle))
        scorer = SCORERS.build(scorer_cfg)
        adapter = build_adapter(model, scorer.requires, al.adapter)
        labeled_set = set(labeled)
        unlabeled = [i for i in range(len(self.pool)) if i not in labeled_set]
        budget = al.budget_at(cycle)
        if budget > len(unlabeled) and self.is_main:
            print(f'[al] budget {budget} exceeds the {len(unlabeled)} unlabeled images; taking all of them.')
        budget = min(budget, len(unlabeled))
        candidates = unlabeled
        if al.selection == 'random_subset_topk':
            gen = torch.Generator().manual_seed(al.cycle_seed(trial, cycle))
            candidates = [unlabeled[i] for i in random_subset(len(unlabeled), al.subset_size, gen).tolist()]
        unreadable: Dict[int, str] = {}
        if not scorer.requires:  # random: one draw for the whole candidate list, whatever the sharding
            values = scorer({'num_images': len(candidates)})
            order = scorer.select(values, budget).tolist()
            picks, scores = [candidates[i] for i in order], [float(values[i]) for i in order]
        elif al.selection == 'coreset':
            features, unreadable = self._score_sharded(adapter, scorer, list(range(len(self.pool))))
            readable = torch.tensor([i not in unreadable for i in range(len(self.pool))])
            mask = torch.zeros(len(self.pool), dtype=torch.bool)
            mask[labeled] = True
            kept = readable.nonzero().squeeze(1)
            order = k_center_greedy(features[kept], mask[kept], min(budget, int((~mask[kept]).sum())))
            picks, scores = kept[order].tolist(), None
        else:
            values, unreadable = self._score_sharded(adapter, scorer, candidates)
            readable = [i for i, c in enumerate(candidates) if c not in unreadable]
            order = scorer.select(values[readable], min(budget, len(readable))).tolist()
            picks, scores = [candidates[readable[i]] for i in order], [float(values[readable[i]]) for i in order]
        if not self.is_main:
            return
        for index, error in sorted(unreadable.items()):
            print(f'[al] skipped unreadable pool image {self.pool.get_data_info(index).get("img_path", index)}: '
                  f'{error}')
        self.state.write(trial, cycle, 'selected.json', dict(
            trial=trial, cycle=cycle, scorer=al.scorer, selection=al.selection, num_candidates=len(candidates),
            indices=picks, image_ids=[str(self.pool.get_data_info(i).get('img_id', i)) for i in picks],
            scores=scores, unreadable=[dict(index=i, image_id=str(self.pool.get_data_info(i).get('img_id', i)),
                                            error=e) for i, e in sorted(unreadable.items())]))

    def _score_sharded(self, adapter, scorer, indices: List[int]):
        """Scores (or features) of ``indices``, in that order, and the unreadable ones.

        Each rank scores every world-size-th index, so every index is scored exactly once; the
        shards are gathered to every rank.

        Returns:
            ``(values, unreadable)``: values with NaN rows for unreadable images, and
            ``{pool index: error}`` of those.
        """
        rank, world = get_rank(), get_world_size()
        mine = indices[rank::world]
        failed: list = []
        values = score_pool(adapter, scorer, self._loader(mine), self.progress and rank == 0, 'acquisition', failed)
        unreadable = {mine[pos]: err for pos, err in failed}
        if world == 1:
            return values, unreadable
        shards = all_gather_object((values, unreadable))
        out = torch.empty((len(indices), ) + tuple(shards[0][0].shape[1:]), dtype=shards[0][0].dtype)
        for r, (shard, shard_failed) in enumerate(shards):
            out[r::world] = shard
            unreadable.update(shard_failed)
        return out, unreadable

    def _loader(self, indices: List[int]) -> DataLoader:
        pipeline = scoring_pipeline(self.cfg.test_dataloader.dataset.pipeline)
        dataset = DATASETS.build(dict(type='IndexSubset', dataset=with_pipeline(self.pool_cfg, pipeline),
                                      indices=indices))
        return pool_loader(dataset, self.al.batch_size, self.al.num_workers)
