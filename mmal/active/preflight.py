"""Checks of a run's test side before anything trains: its images exist and its metric is real."""
from __future__ import annotations

import copy
import logging
import os.path as osp
from typing import Any, List

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger

from ..datasets.errors import build_dataset
from ..errors import UserError


def check_test_images(test_set: Any) -> None:
    """Refuse a test set with missing image files: a metric over fewer images would not compare.

    Raises:
        UserError: Names the first missing file and how many there are.
    """
    missing = [path for path in (test_set.get_data_info(i).get('img_path') for i in range(len(test_set)))
               if path and not osp.isfile(path)]
    if missing:
        more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
        raise UserError(f'the test image {missing[0]} does not exist{more}; restore it or remove it from the test '
                        'list (a metric over fewer images would not compare with other runs).')


def metric_names(cfg: Config, model: torch.nn.Module, test_set: Any) -> List[str]:
    """The names the config's test evaluator reports, found by evaluating ``model`` (untrained is
    fine) on the first test image: a second or two, instead of a cycle of training."""
    evaluator = Evaluator(copy.deepcopy(cfg.test_evaluator))
    evaluator.dataset_meta = getattr(test_set, 'metainfo', None)
    batch = pseudo_collate([test_set[0]])
    model.eval()
    with torch.no_grad():
        outputs = model.test_step(batch)  # type: ignore[operator]
    evaluator.process(data_samples=outputs, data_batch=batch)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the evaluator's table of an untrained model would only confuse
    try:
        return sorted(evaluator.evaluate(1))
    finally:
        logger.setLevel(level)


def check_run_inputs(cfg: Config, model: torch.nn.Module, metric: str | None) -> None:
    """The test images exist, and ``metric`` (``active_learning.metric``) is one the evaluator reports.

    Raises:
        UserError: A missing test image, or a metric name that does not exist (names the real ones).
    """
    test_set = build_dataset(dict(cfg.test_dataloader.dataset))
    check_test_images(test_set)
    if metric is None or not len(test_set):
        return
    names = metric_names(cfg, model, test_set)
    if metric not in names:
        raise UserError(f'active_learning.metric {metric!r} is not a metric of the test evaluator; it reports '
                        f'{", ".join(names)}: name one of them.')
