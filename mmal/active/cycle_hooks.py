"""Cycle hooks: what happens around the steps of an active-learning cycle, in mmengine's style.

:class:`~mmal.active.ActiveLearningLoop` calls, on rank 0, for every cycle it runs::

    before_run(loop)                                # the work dir is claimed (also on --resume)
    before_cycle(loop, trial, cycle, labeled)
    after_train(loop, trial, cycle, metrics)        # metrics.json was just written
    after_acquire(loop, trial, cycle, selection)    # selected.json was just written
    after_cycle(loop, trial, cycle, summary)

The driver's own messages, table and visualizer scalars are hooks (:data:`DEFAULT_CYCLE_HOOKS`);
a config adds its own with ``active_learning.cycle_hooks=[dict(type=...)]`` (``CYCLE_HOOKS``).
Messages go through the loop's mmengine logger, so they reach ``<work_dir>/al.log`` too.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import TYPE_CHECKING, Any, Dict, List

from mmengine.registry import VISBACKENDS

from ..fileio import atomic_write_text
from ..records import CycleMetrics, Selection
from ..registry import CYCLE_HOOKS
from ..report import Run, choose_metric, markdown_table, summarise

if TYPE_CHECKING:  # pragma: no cover
    from .loop import ActiveLearningLoop


class CycleHook:
    """Base class: every method is a no-op; override the points you need.

    ``priority`` orders hooks like mmengine's (lower runs first).
    """

    priority: int = 50

    def before_run(self, loop: 'ActiveLearningLoop') -> None:
        """Once the work dir is claimed, before the first cycle; on ``--resume`` the place to re-derive
        what an interruption may have lost from the state files."""

    def before_cycle(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, labeled: List[int]) -> None:
        """Before a cycle's first step (also when resuming it)."""

    def after_train(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, metrics: CycleMetrics) -> None:
        """After the cycle's model was trained and tested (``metrics.json`` written)."""

    def after_acquire(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, selection: Selection) -> None:
        """After the acquisition (``selected.json`` written)."""

    def after_cycle(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, summary: Dict[str, Any]) -> None:
        """After the cycle; ``summary`` holds ``num_labeled``, ``metric``, ``value``, ``train_seconds``,
        ``acquire_seconds``."""


@CYCLE_HOOKS.register_module()
class CycleLogHook(CycleHook):
    """One line per cycle, and what an acquisition skipped or could not fill."""

    priority = 90

    def before_cycle(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, labeled: List[int]) -> None:
        unlabeled = len(loop.pool) - len(labeled)
        if cycle < loop.al.num_cycles - 1 and loop.al.budget_unit == 'images' and loop.al.budget_at(cycle) > unlabeled:
            loop.logger.info(f'[al] budget {loop.al.budget_at(cycle)} exceeds the {unlabeled} unlabeled images; taking '
                             'all of them.')

    def after_acquire(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, selection: Selection) -> None:
        for image in selection.unreadable:
            loop.logger.info(f'[al] skipped unreadable pool image {image.img_path or image.index}: {image.error}')

    def after_cycle(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, summary: Dict[str, Any]) -> None:
        loop.logger.info(f'[al] trial {trial} cycle {cycle}: {summary["num_labeled"]} labeled, {summary["metric"]} '
                         f'{summary["value"]:.4f} (train+eval {summary["train_seconds"]:.0f} s, acquisition '
                         f'{summary["acquire_seconds"]:.0f} s)')


@CYCLE_HOOKS.register_module()
class ResultsTableHook(CycleHook):
    """The results so far (mean ± std over trials per labeled count) after every tested cycle."""

    priority = 80

    def after_train(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, metrics: CycleMetrics) -> None:
        name = osp.splitext(osp.basename(loop.cfg.filename or 'run'))[0]
        run = Run(name=name, work_dir=loop.work_dir, rows=loop.state.write_results(), metric=loop.al.metric)
        metric = choose_metric([run])
        loop.logger.info('[al] results so far, ' + markdown_table(summarise([run], metric), metric))


@CYCLE_HOOKS.register_module()
class ScalarsHook(CycleHook):
    """Each cycle's test metrics against the labeled count, through the config's visualizer backends
    (``LocalVisBackend`` writes ``<work_dir>/vis_data/scalars.json``; add
    ``dict(type='TensorboardVisBackend')`` to ``visualizer.vis_backends`` for TensorBoard).

    A cycle's scalars are derived from its ``metrics.json``: a marker file
    (``vis_data/logged/trial_<t>_cycle_<c>``) records that they were logged, and a resumed run logs
    every cycle that has metrics but no marker, so no interruption loses a point.
    """

    priority = 70

    def before_run(self, loop: 'ActiveLearningLoop') -> None:
        for metrics in loop.state.all_metrics():
            self._log(loop, metrics, resumed=True)

    def after_train(self, loop: 'ActiveLearningLoop', trial: int, cycle: int, metrics: CycleMetrics) -> None:
        self._log(loop, metrics, resumed=False)

    def _log(self, loop: 'ActiveLearningLoop', metrics: CycleMetrics, resumed: bool) -> None:
        marker = osp.join(loop.work_dir, 'vis_data', 'logged', f'trial_{metrics.trial}_cycle_{metrics.cycle}')
        if osp.exists(marker):
            return
        backends = loop.cfg.get('visualizer', {}).get('vis_backends') or [dict(type='LocalVisBackend')]
        scalars = {f'al/trial_{metrics.trial}/{k}': v for k, v in metrics.metrics.items()}
        save_dir = osp.join(loop.work_dir, 'vis_data')
        for backend_cfg in backends:
            if resumed and backend_cfg.get('type') == 'LocalVisBackend' and _in_scalars_file(
                    osp.join(save_dir, backend_cfg.get('scalar_save_file', 'scalars.json')), scalars,
                    metrics.num_labeled):
                continue  # the interruption came between logging and marking: do not log twice
            backend = VISBACKENDS.build({**backend_cfg, 'save_dir': save_dir})
            backend.add_scalars(scalars, step=metrics.num_labeled)
            backend.close()
        os.makedirs(osp.dirname(marker), exist_ok=True)
        atomic_write_text(marker, '')


def _in_scalars_file(path: str, scalars: Dict[str, float], step: int) -> bool:
    """Whether ``LocalVisBackend``'s file already holds exactly these scalars at ``step``."""
    if not osp.isfile(path):
        return False
    with open(path) as f:
        for line in f:
            try:
                if json.loads(line) == {**scalars, 'step': step}:
                    return True
            except ValueError:
                continue  # a line cut short by the interruption
    return False


#: The hooks every run has (a config's ``active_learning.cycle_hooks`` come on top).
DEFAULT_CYCLE_HOOKS = (dict(type='ScalarsHook'), dict(type='ResultsTableHook'), dict(type='CycleLogHook'))
