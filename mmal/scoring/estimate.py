"""How good the current model is on the unlabeled pool, and how much its acquisition beats random,
measured on the labels that come back. Pure torch.

With ``active_learning.control_fraction`` the method picks its share of the batch first (the set
``A``) and the rest, the *control* ``C``, is drawn uniformly at random from the unlabeled images it
left (``R``, ``|R|`` = the *stratum*). That is a stratified sample of the pool ``U = A + R`` with
known inclusion probabilities: 1 for every pick (a top-k pick is certain, not sampled) and
``|C| / |R|`` for every control image. Weighting each labeled image by the inverse of its inclusion
probability (Horvitz-Thompson; the importance weighting of active testing and LURE, Kossen et al.
2021, Farquhar et al. 2021, with the deterministic part measured exactly) gives an estimate of the
picking model's accuracy on the whole pool that is unbiased, picks included: :func:`pool_accuracy`.
The same weights make an mAP (:func:`pool_map`, a ratio of weighted sums: consistent, not exactly
unbiased) and the difference of two models' scores (:func:`accuracy_gain`, :func:`paired_difference`),
which is how the driver estimates the gain of the acquisition over random. Intervals: Wilson's score
interval for an accuracy, Newcombe's for a difference of two accuracies on the same images, a
percentile bootstrap over the control images for an mAP (the picks are measured in full and are not
resampled).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Sequence

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
    return stratified_bootstrap(weighted_map(truth, predicted, [1.0] * len(truth), num_classes), 0, len(truth),
                                draws, seed)


def stratum_weights(num_active: int, num_control: int, stratum: int) -> List[float]:
    """Per labeled image, the pool images it stands for: 1 for each of the ``num_active`` picks, then
    ``stratum / num_control`` for each control image drawn from the ``stratum`` images left."""
    return [1.0] * num_active + [stratum / num_control if num_control else 0.0] * num_control


def pool_accuracy(active: Tensor, control: Tensor, stratum: int) -> Estimate:
    """The model's accuracy on the whole pool from its ``[a]`` outcomes on the picks and ``[c]`` on the
    control drawn from the ``stratum`` images the picks left; the 95 % interval is Wilson's on the
    control, carried through the (exact) picks. ``n``: the images it stands for."""
    base = accuracy_estimate(control)
    if base.n == 0:
        return Estimate(float('nan'), float('nan'), float('nan'), 0)
    size, hits = len(active) + stratum, float(active.float().sum())

    def on_pool(share: float) -> float:
        return (hits + stratum * share) / size
    return Estimate(on_pool(base.value), on_pool(base.low), on_pool(base.high), size)


def accuracy_gain(first: Tensor, second: Tensor, num_active: int, stratum: int) -> Estimate:
    """How much more often the first of two models is right than the second, on the whole pool.

    Both outcome vectors list the picks first (``num_active``, counted exactly), then the control
    drawn from the ``stratum`` images the picks left. The interval is Newcombe's hybrid score
    interval for a difference of paired proportions (1998, method 10) on the control, carried
    through the picks: unlike a bootstrap it stays open when the two models agree on every control
    image, as they often do once both are good.
    """
    a_first, a_second = first[:num_active].float(), second[:num_active].float()
    c_first, c_second = first[num_active:].bool(), second[num_active:].bool()
    n = int(c_first.numel())
    if n == 0:
        return Estimate(float('nan'), float('nan'), float('nan'), 0)
    both, only_first = int((c_first & c_second).sum()), int((c_first & ~c_second).sum())
    only_second, neither = int((~c_first & c_second).sum()), int((~c_first & ~c_second).sum())
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    one, two = accuracy_estimate(c_first), accuracy_estimate(c_second)
    margins = (both + only_first) * (only_second + neither) * (both + only_second) * (only_first + neither)
    phi = (both * neither - only_first * only_second) / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - one.low) ** 2 - 2 * phi * (p1 - one.low) * (two.high - p2)
                               + (two.high - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (one.high - p1) ** 2 - 2 * phi * (one.high - p1) * (p2 - two.low)
                                + (p2 - two.low) ** 2))
    size, exact = num_active + stratum, float((a_first - a_second).sum())

    def on_pool(share: float) -> float:
        return (exact + stratum * share) / size
    return Estimate(on_pool(diff), on_pool(max(-1.0, low)), on_pool(min(1.0, high)), size)


def stratified_bootstrap(statistic: Callable[[List[int]], float], num_active: int, num_control: int,
                         draws: int = 200, seed: int = 0) -> Estimate:
    """``statistic`` of the labeled images with a 95 % percentile interval from resampling the control.

    Args:
        statistic: Of a list of positions (``0..num_active-1``: the picks, then the control),
            possibly repeated; it weights each position as :func:`stratum_weights` says.
        num_active: The picks, always all kept.
        num_control: The control images, resampled with replacement ``draws`` times.
        draws: Bootstrap resamples (0: the value alone, no interval).
        seed: Seed of the resampling.
    """
    if num_control == 0:
        return Estimate(float('nan'), float('nan'), float('nan'), 0)
    active = list(range(num_active))
    value = statistic(active + list(range(num_active, num_active + num_control)))
    if draws < 1:
        return Estimate(value, float('nan'), float('nan'), num_active + num_control)
    generator = torch.Generator().manual_seed(seed)
    resampled = sorted(statistic(active + [num_active + j for j in pick])
                       for pick in torch.randint(num_control, (draws, num_control), generator=generator).tolist())
    return Estimate(value, resampled[int(0.025 * (draws - 1))], resampled[int(math.ceil(0.975 * (draws - 1)))],
                    num_active + num_control)


def weighted_accuracy(correct: Sequence[bool], weights: Sequence[float]) -> Callable[[List[int]], float]:
    """The statistic of :func:`stratified_bootstrap` for an accuracy: the weighted share correct."""
    def statistic(positions: List[int]) -> float:
        total = sum(weights[i] for i in positions)
        return sum(weights[i] for i in positions if correct[i]) / total if total else float('nan')
    return statistic


def weighted_map(truth: Sequence[Detections], predicted: Sequence[Detections], weights: Sequence[float],
                 num_classes: int) -> Callable[[List[int]], float]:
    """The statistic of :func:`stratified_bootstrap` for an mAP (IoU 0.5) against the returned labels."""
    def statistic(positions: List[int]) -> float:
        return detection_agreement([truth[i] for i in positions], [predicted[i] for i in positions], num_classes,
                                   score_thr=0.0, weights=[weights[i] for i in positions])
    return statistic


def pool_map(truth: Sequence[Detections], predicted: Sequence[Detections], num_active: int, stratum: int,
             num_classes: int, draws: int = 200, seed: int = 0) -> Estimate:
    """The model's mAP on the whole pool: ``truth`` and ``predicted`` list the picks first
    (``num_active``), then the control drawn from the ``stratum`` images they left."""
    weights = stratum_weights(num_active, len(truth) - num_active, stratum)
    return stratified_bootstrap(weighted_map(truth, predicted, weights, num_classes), num_active,
                                len(truth) - num_active, draws, seed)


def paired_difference(first: Callable[[List[int]], float], second: Callable[[List[int]], float], num_active: int,
                      num_control: int, draws: int = 200, seed: int = 0) -> Estimate:
    """``first - second`` on the same labeled images (the same resamples), with its 95 % interval: the
    gain of one model over another on the pool."""
    return stratified_bootstrap(lambda positions: first(positions) - second(positions), num_active, num_control,
                                draws, seed)
