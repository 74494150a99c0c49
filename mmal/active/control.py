"""The random control share of a batch (``active_learning.control_fraction``), scored once its labels
come back: the picking model's accuracy or mAP on it estimates the model's quality on the unlabeled
pool, with an interval (:mod:`mmal.scoring.estimate`); the same measure on the method's own picks
says whether the acquisition finds the images the model gets wrong.

The values go into the cycle's metrics (``results.csv``, the report) under :data:`PREFIX`:
``control/<measure>`` with ``_low`` and ``_high`` (95 %), and ``control/active_<measure>``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from ..engine.acquisition import predict_boxes, predict_classes
from ..records import Selection
from ..scoring.estimate import Estimate, accuracy_estimate, labels_as_detections, map_estimate

PREFIX = 'control/'


def returned_labels(pool: Any, index: int, labeler: Any, num_classes: int) -> Dict[str, Any]:
    """The data info of pool image ``index`` with the labels the annotator returned (the truth without one)."""
    info = pool.get_data_info(index)
    if labeler is not None:
        info = dict(info, instances=labeler.annotate(index, info, num_classes)[0])
    return info


def control_metrics(model: Any, pool: Any, scoring_pool: Any, selection: Selection, labeler: Optional[Any],
                    detection: bool, batch_size: int, seed: int) -> Dict[str, float]:
    """The picking model on the control picks and on the method's picks, against the returned labels.

    Args:
        model: The model that picked the batch (eval mode).
        pool: The pool with its annotations (``get_data_info``).
        scoring_pool: The same images with the scoring pipeline.
        selection: The acquisition record (``context['control']`` lists the control picks).
        labeler: The simulated annotator, or None for the true labels.
        detection: Score boxes (mAP at IoU 0.5) rather than classes (accuracy).
        batch_size: Images per batch.
        seed: Seed of the bootstrap.

    Returns:
        ``{name: value}`` (empty without control picks); accuracies and mAPs in [0, 1].
    """
    control: List[int] = list(selection.context.get('control') or [])
    if not control:
        return {}
    drawn = set(control)
    active = [i for i in selection.indices if i not in drawn]
    num_classes = max(1, len(pool.metainfo.get('classes', ())))
    infos = {i: returned_labels(pool, i, labeler, num_classes) for i in control + active}
    if detection:
        found = predict_boxes(model, scoring_pool, 0.0, batch_size, control + active)

        def measure(indices: List[int]) -> Estimate:
            kept = [i for i in indices if i in found]
            truth = [labels_as_detections([x['bbox'] for x in infos[i]['instances'] if not x.get('ignore_flag')],
                                          [x['bbox_label'] for x in infos[i]['instances'] if not x.get('ignore_flag')])
                     for i in kept]
            return map_estimate(truth, [found[i] for i in kept], num_classes, seed=seed)
        name = 'mAP'
    else:
        classes = predict_classes(model, scoring_pool, batch_size, control + active)

        def measure(indices: List[int]) -> Estimate:
            return accuracy_estimate(torch.tensor([classes[i] == int(infos[i]['gt_label']) for i in indices
                                                   if i in classes], dtype=torch.bool))
        name = 'accuracy'
    estimate, picked = measure(control), measure(active)
    return {f'{PREFIX}{name}': estimate.value, f'{PREFIX}{name}_low': estimate.low,
            f'{PREFIX}{name}_high': estimate.high, f'{PREFIX}active_{name}': picked.value,
            f'{PREFIX}num_images': float(estimate.n)}
