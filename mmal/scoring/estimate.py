"""How good the current model is on the unlabeled pool, measured on a random control share of the
batch once its labels come back. Pure torch.

With ``active_learning.control_fraction`` a share of every batch is drawn uniformly at random from
the unlabeled pool. The model that picked the batch never saw those images, so their returned labels
are an honest test set of the pool the model will be asked about next: the model's accuracy on them
estimates its accuracy on the pool without bias (classification), and its mAP on them estimates the
pool mAP as VOC's ratio estimator does (detection). Intervals: Wilson's score interval for an
accuracy, a percentile bootstrap over the control images for an mAP.

The actively picked part of the batch is scored the same way, as a diagnostic: picks on which the
model does no worse than on random images mean the acquisition is not finding what the model gets
wrong. Their accuracy is not a pool estimate (they were chosen for being hard); deterministic
top-k picks carry no sampling probability to reweight them by.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Sequence

import torch
from torch import Tensor

from .agreement import Detections, detection_agreement

#: Two-sided 95 % normal quantile.
Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    """An estimate with its 95 % interval over ``n`` images."""

    value: float
    low: float
    high: float
    n: int

    def to_json(self) -> Dict[str, float]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def accuracy_estimate(correct: Tensor) -> Estimate:
    """The accuracy of ``[n]`` bool outcomes with Wilson's 95 % score interval (NaN for none)."""
    n = int(correct.numel())
    if n == 0:
        return Estimate(float('nan'), float('nan'), float('nan'), 0)
    p = float(correct.float().mean())
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def labels_as_detections(boxes: Sequence, labels: Sequence) -> Detections:
    """Labeled boxes in the ``(boxes, scores, labels)`` form, every box scoring 1."""
    return (boxes, [1.0] * len(labels), labels)


def map_estimate(truth: Sequence[Detections], predicted: Sequence[Detections], num_classes: int, draws: int = 200,
                 seed: int = 0) -> Estimate:
    """The mAP (IoU 0.5) of ``predicted`` against the labels ``truth`` over ``n`` images, with a 95 %
    percentile-bootstrap interval (``draws`` resamples of the images, seeded).

    Args:
        truth: Per image, the returned labels (:func:`labels_as_detections`).
        predicted: Per image, the model's boxes.
        num_classes: The number of classes.
        draws: Bootstrap resamples.
        seed: Seed of the resampling.
    """
    n = len(truth)
    if n == 0:
        return Estimate(float('nan'), float('nan'), float('nan'), 0)
    value = detection_agreement(truth, predicted, num_classes, score_thr=0.0)
    generator = torch.Generator().manual_seed(seed)
    resampled = sorted(detection_agreement([truth[i] for i in pick], [predicted[i] for i in pick], num_classes,
                                           score_thr=0.0)
                       for pick in torch.randint(n, (draws, n), generator=generator).tolist())
    return Estimate(value, resampled[int(0.025 * (draws - 1))], resampled[int(math.ceil(0.975 * (draws - 1)))], n)
