"""The active-learning driver: trials of train -> evaluate -> acquire cycles, crash-safe.

:class:`ActiveLearningLoop` keeps the sequence of the cycle and nothing else: each cycle's
runner config comes from :mod:`~mmal.active.runner_config`, the work dir and its files from
:mod:`~mmal.active.state`, the method from :func:`~mmal.engine.method.build_method`, and messages,
tables and scalars from the cycle hooks (:mod:`~mmal.active.cycle_hooks`).
"""
from __future__ import annotations

import copy
import gc
import logging
import os.path as osp
import shutil
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dist import barrier, broadcast_object_list, get_rank, get_world_size
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from .. import interrupt
from ..checkpoint import build_model, config_checkpoints, read_checkpoint
from ..datasets.annotations import SanitizedAnnotations, apply_policy, find_annotation_problems
from ..datasets.errors import build_dataset
from ..datasets.unreadable import is_unreadable
from ..engine.acquisition import AcquisitionSpec, acquire, predict_boxes, predict_confidences
from ..engine.hooks import scoring_model, scoring_pipeline
from ..engine.training import train_and_save
from ..errors import UserError
from ..records import CycleMetrics, LabeledSet
from ..registry import CYCLE_HOOKS
from ..scoring.agreement import cohen_kappa, detection_agreement
from .control import GAIN, PREFIX, control_metrics, split_batch
from .cycle_hooks import DEFAULT_CYCLE_HOOKS, CycleHook
from .preflight import check_run_inputs
from .runner_config import cycle_config, data_roots, with_pipeline
from .settings import ALSettings
from .state import RunState
from .stopping import AGREEMENT, CONFIDENCE, stop_record

#: The shadow models of ``active_learning.gain_estimate``, in ``cycle_<k>/gain/<name>``: trained on the
#: previous labeled set plus the previous batch's first picks, or plus as many of its control images.
SHADOWS = ('picked', 'random')


def pool_boxes(pool: Any) -> Optional[List[int]]:
    """The ground-truth boxes of every pool image (instances not marked ignored), or None for a pool
    without boxes (classification)."""
    counts = []
    for i in range(len(pool)):
        instances = pool.get_data_info(i).get('instances')
        if instances is None:
            return None
        counts.append(sum(1 for inst in instances if not inst.get('ignore_flag', 0)))
    return counts


class ActiveLearningLoop:
    """Runs the experiment an mmdet-style config describes in its ``active_learning`` section.

    Args:
        cfg: The config; its ``train_dataloader.dataset`` is the pool.
        work_dir: Where state, checkpoints and ``results.csv`` go.
        resume: Continue the run in ``work_dir`` from its last completed step.
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'`` (srun).
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
        self.pool_cfg: Dict[str, Any] = cfg.train_dataloader.dataset.to_dict()
        for root, layout in data_roots(self.pool_cfg) + data_roots(dict(cfg.test_dataloader.dataset)):
            if not osp.isdir(root):
                raise UserError(f'the data root {root} does not exist; put the dataset there in the layout '
                                f'{layout} or point data_root elsewhere with --cfg-options.')
        self.is_main = get_rank() == 0
        self.hooks: List[CycleHook] = sorted(
            (CYCLE_HOOKS.build(dict(h)) for h in list(DEFAULT_CYCLE_HOOKS) + list(self.al.cycle_hooks)),
            key=lambda hook: hook.priority)
        self.logger = MMLogger.get_instance(f'mmal-al-{id(self)}', logger_name='mmal', log_level='INFO')
        self._scoring_pool: Any = None
        self.annotation_notes: List[str] = []

    # -- the experiment ------------------------------------------------------------------------
    def run(self) -> List[Dict]:
        """Run (or finish) every trial; returns the rows of ``results.csv``.

        Everything that can be checked is checked before the work dir is touched: the pool can be
        read, the initial labeled set fits it, the model can give what the scorer and selector
        read, and the work dir is free, ours, and (on ``--resume``) of the same config.
        """
        self.pool = build_dataset(self.pool_cfg)  # a pool that cannot be read stops the run before any write
        self.al.initial_count(len(self.pool))
        self.boxes = pool_boxes(self.pool)
        if self.boxes is not None:
            self._check_annotations()
        if self.al.budget_unit == 'boxes' and self.boxes is None:
            raise UserError("active_learning.budget_unit='boxes' needs a pool with boxes (a detection dataset); this "
                            "pool's images have none: count the budget in images.")
        model = MODELS.build(copy.deepcopy(self.cfg.model))
        self._spec(0, 0).service().check_model(model)
        check_run_inputs(self.cfg, model, self.al.metric)
        del model
        for path in config_checkpoints(self.cfg):  # refused now, not when the first cycle's training loads it
            read_checkpoint(path, 'fix load_from / init_cfg in the config')
        self._on_main(self._claim_work_dir)
        try:
            self._call_hooks('before_run')
            rows: List[Dict] = []
            for trial in range(self.al.num_trials):
                self.run_trial(trial)
                rows = self.state.write_results() if self.is_main else rows
            return rows
        finally:
            self.state.unlock()
            self.close_logger()

    def _check_annotations(self) -> None:
        """Refuse the pool's bad boxes and unknown classes, or clip and skip them as the policy says
        (the training sets and the pool then read the corrected boxes)."""
        policy = self.al.annotation_policy
        self.annotation_notes = apply_policy(find_annotation_problems(self.pool), policy)
        if self.annotation_notes and policy.changes_boxes:
            self.pool_cfg = dict(type='SanitizedAnnotations', dataset=self.pool_cfg, policy=self.al.annotations)
            self.pool = SanitizedAnnotations(self.pool, self.al.annotations)
            self.boxes = pool_boxes(self.pool)

    def close_logger(self) -> None:
        """Close the loop's log (stream and ``al.log``) and forget the logger instance."""
        for handler in list(self.logger.handlers):
            self.logger.removeHandler(handler)
            handler.close()
        MMLogger._instance_dict.pop(self.logger.instance_name, None)

    def _claim_work_dir(self) -> None:
        """Rank 0: lock and check the work dir, record the config, and log to ``<work_dir>/al.log``."""
        cfg_dict = self.cfg.to_dict()
        method = self.al.method(0, 0)
        removed = self.state.claim(cfg_dict, self.resume, self.cfg.filename or '<config>', metric=self.al.metric,
                                   scorer=method.scorer_cfg['type'] if method.scorer_cfg else
                                   method.selection_cfg['type'])
        handler = logging.FileHandler(osp.join(self.work_dir, 'al.log'))
        handler.setFormatter(logging.Formatter('%(asctime)s - %(name)s - %(levelname)s - %(message)s'))
        self.logger.addHandler(handler)
        for path in removed:
            self.logger.info(f'[al] removed {path}, left by an interrupted write')
        for note in self.annotation_notes:
            self.logger.warning(f'[al] annotations: {note}')

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

    def _call_hooks(self, point: str, *args: Any) -> None:
        interrupt.check()  # between every two steps: Ctrl-C stops the run even if a library swallowed it
        if self.is_main:
            for hook in self.hooks:
                getattr(hook, point)(self, *args)

    def run_trial(self, trial: int) -> None:
        """All cycles of one trial, from the labeled set drawn from ``seed`` and ``trial`` only."""
        pool_size = len(self.pool)
        gen = torch.Generator().manual_seed(self.al.seed + 1000 * trial)
        labeled = sorted(torch.randperm(pool_size, generator=gen)[:self.al.initial_count(pool_size)].tolist())
        for cycle in range(self.al.num_cycles):
            if cycle > 0:
                previous = self.state.selection(trial, cycle - 1, pool_size)
                if previous is None:
                    raise UserError(f'{self.state.path(trial, cycle - 1, "selected.json")} is missing although a '
                                    'later step exists; the work dir was changed by hand: start a new --work-dir.')
                if not previous.selected:
                    if self.is_main:
                        self.logger.info(f'[al] trial {trial}: nothing is left to label after cycle {cycle - 1} '
                                         f'({len(labeled)} labeled, {len(previous.unreadable)} unreadable); the trial '
                                         'ends there.')
                    return
                labeled = sorted(set(labeled) | set(previous.indices))
            if self.run_cycle(trial, cycle, labeled):
                return

    def run_cycle(self, trial: int, cycle: int, labeled: List[int]) -> bool:
        """One cycle: record the labeled set, train and test, acquire; a step whose file exists is skipped.

        Returns:
            Whether the trial ends here (the stopping rule fired and ends trials).
        """
        self._call_hooks('before_cycle', trial, cycle, labeled)
        self._record_labeled(trial, cycle, labeled)
        self._record_annotations(trial, cycle, labeled)
        start = time.time()
        runner, metrics = self._train_and_test(trial, cycle, labeled)
        train_seconds, start = time.time() - start, time.time()
        ends = self._stopping(trial, cycle)
        if cycle < self.al.num_cycles - 1 and not ends and self.state.read(trial, cycle, 'selected.json') is None:
            if self.al.gain_estimate and cycle > 0:  # scored with the picking model on this cycle's batch
                self._train_shadows(trial, cycle)
            self._acquire(trial, cycle, labeled, runner)
        if self.is_main:  # the saved pieces of the scoring pass, once selected.json holds its outcome
            shutil.rmtree(osp.join(self.state.cycle_dir(trial, cycle), 'acquisition'), ignore_errors=True)
        main = self.al.metric or next(iter(metrics.metrics), None)
        self._call_hooks('after_cycle', trial, cycle, dict(
            num_labeled=len(labeled), metric=main, value=metrics.metrics.get(main, float('nan')) if main else
            float('nan'), train_seconds=train_seconds, acquire_seconds=time.time() - start))
        del runner
        gc.collect()
        return ends

    # -- steps --------------------------------------------------------------------------------------
    def _record_labeled(self, trial: int, cycle: int, labeled: List[int]) -> None:
        """Write ``labeled.json`` (rank 0), or check the recorded one agrees with the state before it."""
        # Ranks decide from the files on disk: every rank reads them between the same barriers.
        barrier()
        recorded = self.state.labeled(trial, cycle, len(self.pool))
        barrier()
        if recorded is None and self.is_main:
            ids = [str(self.pool.get_data_info(i).get('img_id', i)) for i in labeled]
            self.state.write(trial, cycle, 'labeled.json', LabeledSet(
                trial=trial, cycle=cycle, seed=self.al.cycle_seed(trial, cycle), indices=labeled,
                image_ids=ids).to_json())
        barrier()
        if recorded is not None and recorded.indices != labeled:
            raise UserError(f'{self.state.path(trial, cycle, "labeled.json")} disagrees with the state before it; '
                            'the work dir was changed by hand: start a new --work-dir.')

    def _record_annotations(self, trial: int, cycle: int, labeled: List[int]) -> None:
        """With ``active_learning.annotator``: write ``annotations.json`` (rank 0), the labels it returned
        for every image labeled so far that differ from the truth (the previous cycle's, plus those of the
        images new in this cycle) and each change it made; the cycle trains on them."""
        annotator = self.al.labeler
        path = self.state.path(trial, cycle, 'annotations.json')
        if annotator is None or not self.is_main or osp.isfile(path):
            barrier()
            return
        before = self.state.read(trial, cycle - 1, 'annotations.json') if cycle > 0 else None
        record: Dict[str, Any] = dict(annotator=self.al.annotator, instances={}, changes=[], annotated=[])
        if before is not None:
            record.update(instances=dict(before['instances']), changes=list(before['changes']),
                          annotated=list(before['annotated']))
        new = sorted(set(labeled) - set(record['annotated']))
        num_classes = len(self.pool.metainfo.get('classes', ())) or 1
        for index in new:
            instances, changes = annotator.annotate(index, self.pool.get_data_info(index), num_classes)
            if changes:
                record['instances'][str(index)] = instances
                record['changes'].extend(changes)
        record['annotated'] = sorted(set(record['annotated']) | set(new))
        self.state.write(trial, cycle, 'annotations.json', record)
        kinds = Counter(c['kind'] for c in record['changes'])
        boxes = sum(self.boxes[i] for i in record['annotated']) if self.boxes is not None else 0
        self.logger.info(f'[al] trial {trial} cycle {cycle}: the annotator changed {len(record["changes"])} of the '
                         f'{boxes} true boxes of the {len(record["annotated"])} images labeled ('
                         + ', '.join(f'{kinds[k]} {k}' for k in ('drop', 'swap', 'shift')) + ')')
        barrier()

    def _train_and_test(self, trial: int, cycle: int, labeled: List[int]):
        """The cycle's trained model (a runner holding it, or None when nothing had to run) and its
        test metrics, each step skipped when its file exists."""
        runner: Optional[Runner] = None
        model_path = self.state.path(trial, cycle, 'model.pth')
        if not osp.isfile(model_path):
            runner = self._train(trial, cycle)
        else:
            read_checkpoint(model_path, f'delete it and run again with --resume to retrain trial {trial} cycle {cycle}')
        metrics = self.state.metrics(trial, cycle)
        if metrics is None:
            runner = runner or self._runner(trial, cycle, load_from=model_path)
            try:
                results = runner.test()
            except Exception as err:
                if not is_unreadable(err):
                    raise
                raise UserError(f'a test image cannot be read ({type(err).__name__}: {err}); fix or restore that file, '
                                'then run again with --resume.') from None
            values = {k: float(v) for k, v in results.items()}
            agreement = self._agreement(trial, cycle, runner)
            if agreement is not None:
                values[AGREEMENT] = agreement
            confidence = self._confidence(trial, cycle)
            if confidence is not None:
                values[CONFIDENCE] = confidence
            metrics = CycleMetrics(trial=trial, cycle=cycle, num_labeled=len(labeled), metrics=values,
                                   num_boxes=None if self.boxes is None else sum(self.boxes[i] for i in labeled))
            if self.is_main:
                self.state.write(trial, cycle, 'metrics.json', metrics.to_json())
            self._call_hooks('after_train', trial, cycle, metrics)
        return runner, metrics

    def _agreement(self, trial: int, cycle: int, runner: Runner) -> Optional[float]:
        """With ``active_learning.stop``: the cycle's model's predictions on the trial's stop set
        (``stop_predictions.json``) and their agreement with the previous cycle's (None in cycle 0)."""
        rule = self.al.stop_rule
        if rule is None:
            return None
        found = self.state.read(trial, cycle, 'stop_predictions.json')
        if found is None:
            model = scoring_model(runner).eval()
            indices = rule.stop_indices(len(self.pool), self.al.seed + 1000 * trial)
            if self.boxes is not None:
                boxes = predict_boxes(model, self.scoring_pool(), 0.05, self.al.batch_size, indices)
                found = dict(kind='boxes', images={str(i): list(d) for i, d in boxes.items()})
            else:
                classes = predict_confidences(model, self.scoring_pool(), self.al.batch_size, indices)
                found = dict(kind='classes', images={str(i): c for i, (c, _) in classes.items()},
                             confidence={str(i): p for i, (_, p) in classes.items()})
            if self.is_main:
                self.state.write(trial, cycle, 'stop_predictions.json', found)
        previous = self.state.read(trial, cycle - 1, 'stop_predictions.json') if cycle > 0 else None
        if previous is None:
            return None
        common = sorted(set(previous['images']) & set(found['images']), key=int)
        num_classes = max(1, len(self.pool.metainfo.get('classes', ())))
        if found['kind'] == 'boxes':
            return detection_agreement([previous['images'][k] for k in common], [found['images'][k] for k in common],
                                       num_classes, rule.score_thr)
        return cohen_kappa(torch.tensor([previous['images'][k] for k in common]),
                           torch.tensor([found['images'][k] for k in common]),
                           max(num_classes, 1 + max([found['images'][k] for k in common] +
                                                    [previous['images'][k] for k in common], default=0)))

    def _confidence(self, trial: int, cycle: int) -> Optional[float]:
        """A classifier's average confidence on the trial's stop set (:data:`CONFIDENCE`), or None."""
        found = self.state.read(trial, cycle, 'stop_predictions.json') if self.al.stop_rule is not None else None
        confidence = (found or {}).get('confidence')
        return sum(confidence.values()) / len(confidence) if confidence else None

    def _score_control(self, trial: int, cycle: int, selection: Any, runner: Runner) -> None:
        """Rank 0, with a control share: the cycle's model on it and on the method's picks, against the
        labels that come back, added to the cycle's metrics (``results.csv``)."""
        paths = [self.state.path(trial, cycle, osp.join('gain', name, 'model.pth')) for name in SHADOWS]
        shadows = None
        if self.al.gain_estimate and all(osp.isfile(p) for p in paths):
            shadows = (build_model(self.cfg, paths[0]), build_model(self.cfg, paths[1]))
        values = control_metrics(scoring_model(runner).eval(), self.pool, self.scoring_pool(), selection,
                                 self.al.labeler, self.boxes is not None, self.al.batch_size,
                                 self.al.cycle_seed(trial, cycle), shadows)
        metrics = self.state.metrics(trial, cycle)
        if not values or metrics is None:
            return
        metrics.metrics.update(values)
        self.state.write(trial, cycle, 'metrics.json', metrics.to_json())
        self.state.write_results()
        name = next(iter(values))
        measure, count = name[len(PREFIX):], int(values[PREFIX + 'num_images'])
        pool = PREFIX + 'pool_' + measure
        self.logger.info(f'[al] trial {trial} cycle {cycle}: on the random control share ({count} images) the model '
                         f'scores {measure} {values[name]:.3f} (95 % {values[name + "_low"]:.3f}-'
                         f'{values[name + "_high"]:.3f}); on its own picks {values[PREFIX + "active_" + measure]:.3f}; '
                         f'on the whole unlabeled pool, estimated {values[pool]:.3f} (95 % {values[pool + "_low"]:.3f}-'
                         f'{values[pool + "_high"]:.3f})')
        gain = GAIN + measure
        if gain in values:
            self.logger.info(f'[al] trial {trial} cycle {cycle}: the last batch\'s picks beat as many random images by '
                             f'{values[gain]:+.3f} {measure} on the pool (95 % {values[gain + "_low"]:+.3f} to '
                             f'{values[gain + "_high"]:+.3f}; shadow models, scored on this batch)')

    def _stopping(self, trial: int, cycle: int) -> bool:
        """Whether the stopping rule fires at this cycle and ends the trial; said (and ``stop.json``
        written) the first cycle it fires."""
        rule = self.al.stop_rule
        if rule is None:
            return False
        agreements = []
        for k in range(cycle + 1):
            metrics = self.state.metrics(trial, k)
            agreements.append(None if metrics is None else metrics.metrics.get(AGREEMENT))
        if not rule.fires(agreements):
            return False
        if self.is_main and not rule.fires(agreements[:-1]) and self.state.read(trial, cycle, 'stop.json') is None:
            self.state.write(trial, cycle, 'stop.json', stop_record(rule, agreements, cycle))
            shown = ', '.join('-' if a is None else f'{a:.3f}' for a in agreements[-rule.window:])
            self.logger.info(f'[al] trial {trial}: the stopping rule fires at cycle {cycle}: successive models agreed '
                             f'on the stop set at >= {rule.threshold} for {rule.window} cycles ({shown}); '
                             + ('the trial ends here.' if rule.end_trial else 'going on (end_trial=False).'))
        return rule.end_trial

    def _runner(self, trial: int, cycle: int, load_from: Optional[str] = None, folder: str = '') -> Runner:
        """The cycle's runner; ``folder``: a sub-folder of the cycle with its own ``labeled.json`` (a shadow)."""
        pool_cfg = self.pool_cfg if self.al.labeler is None else dict(
            type='Relabeled', dataset=self.pool_cfg, labels_file=self.state.path(trial, cycle, 'annotations.json'))
        cfg = cycle_config(self.cfg, f'trial{trial}_cycle{cycle}', pool_cfg,
                           osp.join(self.state.cycle_dir(trial, cycle), folder),
                           self.state.path(trial, cycle, osp.join(folder, 'labeled.json')),
                           self.al.cycle_seed(trial, cycle),
                           load_from=load_from, semi_supervised=self.al.semi_supervised, progress=self.progress,
                           launcher=self.launcher, training_hooks=self.al.method(trial, cycle).training_hooks)
        return Runner.from_cfg(cfg)

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
        load_from = self.cfg.get('load_from')  # the user's starting weights, for every cycle
        if self.al.retrain == 'finetune' and cycle > 0:
            load_from = self.state.path(trial, cycle - 1, 'model.pth')
        runner = self._runner(trial, cycle, load_from=load_from)
        train_and_save(runner, self.state.path(trial, cycle, 'model.pth'), f'trial {trial} cycle {cycle}',
                       'with --resume')
        return runner

    def _train_shadows(self, trial: int, cycle: int) -> None:
        """With ``gain_estimate``: the two shadow models of :data:`SHADOWS`, each trained (as the cycle's
        model is, same seed) and tested unless its ``model.pth`` exists; their test metrics go to
        ``gain/<name>/metrics.json`` (the gain on the test set, beside the estimate)."""
        before = self.state.labeled(trial, cycle - 1, len(self.pool))
        previous = self.state.selection(trial, cycle - 1, len(self.pool))
        if before is None or previous is None:
            return
        active, control, _ = split_batch(previous)
        size = min(len(active), len(control))
        for name, added in zip(SHADOWS, (active[:size], control[:size])):
            folder = osp.join('gain', name)
            model_path = self.state.path(trial, cycle, osp.join(folder, 'model.pth'))
            if osp.isfile(model_path):
                continue
            indices = sorted(set(before.indices) | set(added))
            if self.is_main:
                self.state.write(trial, cycle, osp.join(folder, 'labeled.json'), LabeledSet(
                    trial=trial, cycle=cycle, seed=self.al.cycle_seed(trial, cycle), indices=indices,
                    image_ids=[str(self.pool.get_data_info(i).get('img_id', i)) for i in indices]).to_json())
            barrier()
            train_dir = osp.join(self.state.cycle_dir(trial, cycle), folder, 'train')
            if self.is_main and osp.isdir(train_dir):
                shutil.rmtree(train_dir)
            barrier()
            load_from = self.cfg.get('load_from')
            if self.al.retrain == 'finetune':
                load_from = self.state.path(trial, cycle - 1, 'model.pth')
            runner = self._runner(trial, cycle, load_from=load_from, folder=folder)
            train_and_save(runner, model_path, f'trial {trial} cycle {cycle} ({name} shadow)', 'with --resume')
            results = {k: float(v) for k, v in runner.test().items()}
            if self.is_main:
                self.state.write(trial, cycle, osp.join(folder, 'metrics.json'),
                                 dict(num_labeled=len(indices), metrics=results))
            del runner
            gc.collect()

    def _spec(self, trial: int, cycle: int) -> AcquisitionSpec:
        """The acquisition of (trial, cycle): the run's method with the cycle's seed, its budget."""
        al = self.al
        return AcquisitionSpec(al.method(trial, cycle), al.budget_at(cycle), budget_unit=al.budget_unit,
                               adapter=al.adapter, batch_size=al.batch_size, num_workers=al.num_workers,
                               progress=self.progress, features=al.feature_source,
                               control_fraction=al.control_fraction)

    def scoring_pool(self) -> Any:
        """The pool with the test pipeline minus annotation loading (built once per run)."""
        if self._scoring_pool is None:
            pipeline = scoring_pipeline(self.cfg.test_dataloader.dataset.pipeline)
            self._scoring_pool = build_dataset(with_pipeline(self.pool_cfg, pipeline))
        return self._scoring_pool

    def _acquire(self, trial: int, cycle: int, labeled: List[int], runner: Optional[Runner]) -> None:
        """Score the unlabeled pool with the cycle's model and write ``selected.json`` (rank 0)."""
        if runner is None:
            runner = self._runner(trial, cycle, load_from=self.state.path(trial, cycle, 'model.pth'))
        runner.load_or_resume()  # no-op when the model was trained or tested in this runner
        selection = acquire(self._spec(trial, cycle), scoring_model(runner), self.scoring_pool(), labeled,
                            cost=self.boxes if self.al.budget_unit == 'boxes' else None,
                            shard_dir=osp.join(self.state.cycle_dir(trial, cycle), 'acquisition'),  # resumable
                            trial=trial, cycle=cycle, num_labeled=len(labeled))
        if self.is_main:
            self.state.write(trial, cycle, 'selected.json', selection.to_json())
            self._score_control(trial, cycle, selection, runner)
            self._call_hooks('after_acquire', trial, cycle, selection)
        barrier()  # selected.json is on disk for every rank
