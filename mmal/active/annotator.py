"""Simulated annotators: the labels that come back when the driver buys an image.

The driver's pool holds the true labels. An annotator decides what a person would have returned
for each image that enters the labeled set (the initial set and every acquired batch), so any
experiment can run under realistic labels (``active_learning.annotator``); the models train on what
it returned, and ``trial_<t>/cycle_<k>/annotations.json`` records exactly what it changed.

Each image's changes are drawn from ``(seed, image index)`` alone: an image gets the same labels
whichever cycle buys it, and a resumed run the same as an uninterrupted one.
"""
from __future__ import annotations

import copy
import random
from typing import Any, Dict, List, Tuple

from ..errors import UserError
from ..registry import ANNOTATORS

#: A change an annotator made: ``dict(index, box, kind, before, after[, iou])``.
Change = Dict[str, Any]


@ANNOTATORS.register_module()
class ExactAnnotator:
    """Returns the true labels (the default)."""

    def annotate(self, index: int, info: Dict[str, Any], num_classes: int) -> Tuple[List[dict], List[Change]]:
        """The instances returned for pool image ``index`` (``info``: its data info), and the changes."""
        return copy.deepcopy(info.get('instances', [])), []


@ANNOTATORS.register_module()
class NoisyAnnotator(ExactAnnotator):
    """An annotator who misses objects, picks the wrong class and draws loose boxes.

    Each box (``ignore_flag`` boxes are kept as they are) independently gets at most one error:
    dropped with probability ``drop``, else given another class (uniformly) with probability ``swap``,
    else moved along x or y so that its IoU with the true box is ``shift_iou`` with probability
    ``shift`` (towards the image's inside where the image size is known; a box that cannot move so
    within the image is clipped, and its IoU recorded as it is).

    Args:
        drop: Probability that a box is missing.
        swap: Probability that a box has a wrong class.
        shift: Probability that a box is badly located.
        shift_iou: The IoU of a shifted box with the true one, in (0, 1).
        seed: Seed of the draws (with each image's index).
    """

    def __init__(self, drop: float = 0.0, swap: float = 0.0, shift: float = 0.0, shift_iou: float = 0.5,
                 seed: int = 0) -> None:
        for name, value in (('drop', drop), ('swap', swap), ('shift', shift)):
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise UserError(f'NoisyAnnotator: {name} must be a probability in [0, 1], got {value!r}.')
        if drop + swap + shift > 1:
            raise UserError(f'NoisyAnnotator: drop + swap + shift is {drop + swap + shift:g}; a box gets at most one '
                            'error, so they must sum to at most 1.')
        if not (isinstance(shift_iou, (int, float)) and 0 < shift_iou < 1):
            raise UserError(f'NoisyAnnotator: shift_iou must lie in (0, 1), got {shift_iou!r}.')
        if not isinstance(seed, int):
            raise UserError(f'NoisyAnnotator: seed must be an integer, got {seed!r}.')
        self.drop, self.swap, self.shift, self.shift_iou, self.seed = drop, swap, shift, shift_iou, seed

    def annotate(self, index: int, info: Dict[str, Any], num_classes: int) -> Tuple[List[dict], List[Change]]:
        rng = random.Random(f'{self.seed}/{index}')
        size = (info.get('width'), info.get('height'))
        out: List[dict] = []
        changes: List[Change] = []
        for position, instance in enumerate(info.get('instances', [])):
            instance = copy.deepcopy(instance)
            draw = rng.random()
            if instance.get('ignore_flag', 0):
                out.append(instance)
                continue
            change: Change = dict(index=index, box=position, before=dict(bbox=list(instance['bbox']),
                                                                         bbox_label=instance['bbox_label']))
            if draw < self.drop:
                changes.append(dict(change, kind='drop', after=None))
                continue
            if draw < self.drop + self.swap and num_classes > 1:
                instance['bbox_label'] = rng.choice([c for c in range(num_classes) if c != instance['bbox_label']])
                changes.append(dict(change, kind='swap', after=dict(bbox=list(instance['bbox']),
                                                                    bbox_label=instance['bbox_label'])))
            elif self.drop + self.swap <= draw < self.drop + self.swap + self.shift:
                instance['bbox'] = shifted(instance['bbox'], self.shift_iou, size, rng)
                changes.append(dict(change, kind='shift', after=dict(bbox=instance['bbox'],
                                                                     bbox_label=instance['bbox_label']),
                                    iou=round(iou(change['before']['bbox'], instance['bbox']), 6)))
            out.append(instance)
        return out, changes


def iou(a: List[float], b: List[float]) -> float:
    """The IoU of two ``x1 y1 x2 y2`` boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def shifted(box: List[float], target: float, size: Tuple[Any, Any], rng: random.Random) -> List[float]:
    """``box`` moved along one axis so that its IoU with ``box`` is ``target``: a move by ``d`` of a side
    of length ``w`` leaves ``(w - d) / (w + d)``, so ``d = w (1 - target) / (1 + target)``. Towards the
    image's inside where ``size`` (width, height) is known; clipped to the image when neither way fits."""
    axis = rng.randrange(2)
    low, high = box[axis], box[axis + 2]
    d = (high - low) * (1 - target) / (1 + target)
    limit = size[axis]
    signs = [1, -1] if rng.random() < 0.5 else [-1, 1]
    fits = [s for s in signs if limit is None or (low + s * d >= 0 and high + s * d <= limit)]
    sign = fits[0] if fits else signs[0]
    out = list(map(float, box))
    out[axis], out[axis + 2] = low + sign * d, high + sign * d
    if limit is not None and not fits:
        out[axis], out[axis + 2] = max(0.0, out[axis]), min(float(limit), out[axis + 2])
    return out
