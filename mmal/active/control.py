"""The random control share of a batch (``active_learning.control_fraction``), scored once its labels
come back (:mod:`mmal.scoring.estimate` has the statistics):

- the picking model on the control alone: its accuracy or mAP on the images the method left;
- on the method's own picks: whether the acquisition finds the images the model gets wrong;
- on the whole unlabeled pool it picked from: picks and control weighted by the inverse of their
  inclusion probabilities (Horvitz-Thompson), unbiased for the picked part too;
- with ``active_learning.gain_estimate``: the gain of the previous batch's acquisition over random,
  the difference on the same weighted images of two shadow models trained on the labeled set before
  that batch plus, one, its first picks and, the other, its control images (as many of each).

The values go into the cycle's metrics (``results.csv``, the report) under :data:`PREFIX` and
:data:`GAIN`: ``control/<measure>``, ``control/pool_<measure>`` and ``gain/<measure>``, each with
``_low`` and ``_high`` (95 %); ``control/active_<measure>`` and ``control/num_images``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..engine.acquisition import predict_boxes, predict_classes
from ..records import Selection
from ..scoring import estimate as est

PREFIX = 'control/'
GAIN = 'gain/'


def returned_labels(pool: Any, index: int, labeler: Any, num_classes: int) -> Dict[str, Any]:
    """The data info of pool image ``index`` with the labels the annotator returned (the truth without one)."""
    info = pool.get_data_info(index)
    if labeler is not None:
        info = dict(info, instances=labeler.annotate(index, info, num_classes)[0])
    return info


def split_batch(selection: Selection) -> Tuple[List[int], List[int], int]:
    """The method's picks, the control picks, and how many unlabeled images the control was drawn from."""
    control: List[int] = list(selection.context.get('control') or [])
    drawn = set(control)
    stratum = int(selection.context.get('control_stratum') or len(control))
    return [i for i in selection.indices if i not in drawn], control, stratum


class ReturnedBatch:
    """A batch's returned labels, and any model's outcomes on it in the order picks-then-control.

    Args:
        pool: The pool with its annotations (``get_data_info``).
        scoring_pool: The same images with the scoring pipeline.
        selection: The acquisition record (``context['control']`` lists the control picks).
        labeler: The simulated annotator, or None for the true labels.
        detection: Score boxes (mAP at IoU 0.5) rather than classes (accuracy).
        batch_size: Images per scoring batch.
    """

    def __init__(self, pool: Any, scoring_pool: Any, selection: Selection, labeler: Optional[Any], detection: bool,
                 batch_size: int) -> None:
        self.active, self.control, self.stratum = split_batch(selection)
        self.scoring_pool, self.detection, self.batch_size = scoring_pool, detection, batch_size
        self.num_classes = max(1, len(pool.metainfo.get('classes', ())))
        self.infos = {i: returned_labels(pool, i, labeler, self.num_classes) for i in self.active + self.control}
        self.measure = 'mAP' if detection else 'accuracy'

    def outcomes(self, model: Any) -> Tuple[List[Any], int]:
        """The model's outcome on each image it could read (a correct class, or ``(truth, boxes)``), picks
        first; and how many of them are picks."""
        order = self.active + self.control
        if self.detection:
            found = predict_boxes(model, self.scoring_pool, 0.0, self.batch_size, order)
            kept = [i for i in order if i in found]
            values: List[Any] = [(self._truth(i), found[i]) for i in kept]
        else:
            classes = predict_classes(model, self.scoring_pool, self.batch_size, order)
            kept = [i for i in order if i in classes]
            values = [classes[i] == int(self.infos[i]['gt_label']) for i in kept]
        picked = set(self.active)
        return values, sum(1 for i in kept if i in picked)

    def _truth(self, index: int) -> Any:
        kept = [x for x in self.infos[index]['instances'] if not x.get('ignore_flag')]
        return est.labels_as_detections([x['bbox'] for x in kept], [x['bbox_label'] for x in kept])

    def statistic(self, values: Sequence[Any], num_active: int) -> Callable[[List[int]], float]:
        """The pool-weighted score of these outcomes (a statistic of
        :func:`~mmal.scoring.estimate.stratified_bootstrap`)."""
        weights = est.stratum_weights(num_active, len(values) - num_active, self.stratum)
        if self.detection:
            return est.weighted_map([v[0] for v in values], [v[1] for v in values], weights, self.num_classes)
        return est.weighted_accuracy(values, weights)


def interval(name: str, estimate: est.Estimate) -> Dict[str, float]:
    """``{name, name_low, name_high}``."""
    return {name: estimate.value, f'{name}_low': estimate.low, f'{name}_high': estimate.high}


def control_metrics(model: Any, pool: Any, scoring_pool: Any, selection: Selection, labeler: Optional[Any],
                    detection: bool, batch_size: int, seed: int,
                    shadows: Optional[Tuple[Any, Any]] = None) -> Dict[str, float]:
    """The picking model on the control, on the method's picks and on the pool, against the returned
    labels; with ``shadows``, the gain of the previous acquisition over random.

    Args:
        model: The model that picked the batch (eval mode).
        pool: The pool with its annotations (``get_data_info``).
        scoring_pool: The same images with the scoring pipeline.
        selection: The acquisition record.
        labeler: The simulated annotator, or None for the true labels.
        detection: Score boxes (mAP at IoU 0.5) rather than classes (accuracy).
        batch_size: Images per batch.
        seed: Seed of the bootstraps.
        shadows: The models trained on the previous batch's picks and on as many of its control images.

    Returns:
        ``{name: value}`` (empty without control picks); accuracies and mAPs in [0, 1].
    """
    batch = ReturnedBatch(pool, scoring_pool, selection, labeler, detection, batch_size)
    if not batch.control:
        return {}
    values, num_active = batch.outcomes(model)
    name = batch.measure
    if detection:
        truth, boxes = [v[0] for v in values], [v[1] for v in values]
        alone = est.map_estimate(truth[num_active:], boxes[num_active:], batch.num_classes, seed=seed)
        pool_estimate = est.pool_map(truth, boxes, num_active, batch.stratum, batch.num_classes, seed=seed)
    else:
        correct = torch.tensor(values, dtype=torch.bool)
        alone = est.accuracy_estimate(correct[num_active:])
        pool_estimate = est.pool_accuracy(correct[:num_active], correct[num_active:], batch.stratum)
    picked = batch.statistic(values[:num_active], num_active)(list(range(num_active)))
    metrics = {**interval(f'{PREFIX}{name}', alone), f'{PREFIX}active_{name}': picked,
               **interval(f'{PREFIX}pool_{name}', pool_estimate), f'{PREFIX}num_images': float(alone.n)}
    if shadows is not None:
        (first, first_active), (second, second_active) = (batch.outcomes(m) for m in shadows)
        if len(first) == len(values) == len(second) and first_active == num_active == second_active:
            if detection:  # both read every image the picker read
                gain = est.paired_difference(batch.statistic(first, num_active), batch.statistic(second, num_active),
                                             num_active, len(values) - num_active, seed=seed)
            else:
                gain = est.accuracy_gain(torch.tensor(first), torch.tensor(second), num_active, batch.stratum)
            metrics.update(interval(f'{GAIN}{name}', gain))
    return metrics
