"""Registered acquisition functions (baal's shape: one small class per function).

A scorer declares in ``requires`` which model outputs it reads (the keys of
:mod:`mmal.outputs`), so an adapter computes only those, and overrides
:meth:`Scorer.compute` alone. Output checking, reduction of per-box values to image scores and
the score of images without boxes are shared by every scorer; ranking, non-finite handling and
tie-breaking are the selectors' (:mod:`mmal.selection`).
"""
from __future__ import annotations

from typing import Any, ClassVar, FrozenSet, Mapping, Optional, Union

import torch
from torch import Tensor

from ..outputs import (
    AUG_PROBS,
    BOX_STABILITY,
    CLASS_QUALITY,
    FLIP_LOG_PROBS,
    IMAGE_INDEX,
    LABELS,
    LOG_PROBS,
    MC_PROBS,
    NUM_IMAGES,
    PRED_LOSS,
    PROBS,
    PROPOSAL_IOU,
    SCORES,
    check_outputs,
)
from ..registry import SCORERS
from . import functional as F

#: ``empty_score='max'``: images without a kept box rank above every image with one.
EMPTY_FIRST = float(torch.finfo(torch.float32).max)


class Scorer:
    """Base class: turns one batch of model outputs into one score per image.

    Args:
        aggregation: How per-box values become an image score: ``'max'``, ``'mean'``, ``'sum'``
            or ``'topk_mean'`` (see :func:`mmal.scoring.functional.aggregate`).
        k: Boxes per image for ``'topk_mean'``.
        empty_score: Score of an image without any box: a number (default 0.0, so such images
            rank with the least uncertain), or ``'max'`` to rank them first (a weak early model
            that finds nothing in an image is most uncertain about it).
        seed: Seed of the scorer's own randomness (only :class:`Random` has any); the acquisition
            service passes each cycle's seed.
    """

    #: Model outputs this scorer reads (keys of :mod:`mmal.outputs`).
    requires: ClassVar[FrozenSet[str]] = frozenset()
    #: True when :meth:`compute` already returns one value per image (never aggregated).
    image_level: ClassVar[bool] = False

    def __init__(self,
                 aggregation: str = 'max',
                 k: int = 3,
                 empty_score: Union[float, str] = 0.0,
                 seed: Optional[int] = None) -> None:
        if aggregation not in F.AGGREGATION_MODES:
            raise ValueError(f'unknown aggregation {aggregation!r}; choose one of {F.AGGREGATION_MODES}.')
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f'k must be a positive integer, got {k!r}.')
        if empty_score == 'max':
            empty_score = EMPTY_FIRST
        elif isinstance(empty_score, bool) or not isinstance(empty_score, (int, float)):
            raise ValueError(f"empty_score must be a number or 'max', got {empty_score!r}.")
        self.aggregation, self.k, self.empty_score, self.seed = aggregation, k, float(empty_score), seed

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        """The scoring step: one value per item (box or image), higher = more worth labeling."""
        raise NotImplementedError

    def __call__(self, outputs: Mapping[str, Any]) -> Tensor:
        """Image-level scores ``[N]`` of one batch of model outputs."""
        check_outputs(outputs, self.requires, type(self).__name__)
        values = self.compute(outputs)
        if not self.image_level and 'image_index' in outputs:
            values = F.aggregate(values, outputs['image_index'], outputs['num_images'], self.aggregation,
                                 self.k, self.empty_score)
        return values

    def __repr__(self) -> str:
        return f'{type(self).__name__}(aggregation={self.aggregation!r})'


@SCORERS.register_module()
class Random(Scorer):
    """Random acquisition: uniform scores from one seeded generator, so a trial is reproducible.

    Args:
        seed: Seed of the generator.
    """
    image_level = True

    def __init__(self, seed: Optional[int] = 0, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return torch.rand(outputs['num_images'], generator=self.generator)


@SCORERS.register_module()
class Entropy(Scorer):
    """Predictive entropy of each box's (or image's) class distribution."""
    requires = frozenset({PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.entropy(outputs[PROBS])


@SCORERS.register_module()
class VariationRatio(Scorer):
    """``1 - max_c p_c`` (the study's eq. 2)."""
    requires = frozenset({PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.variation_ratio(outputs[PROBS])


@SCORERS.register_module()
class Margin(Scorer):
    """``1 - (p_top1 - p_top2)``."""
    requires = frozenset({PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.margin(outputs[PROBS])


@SCORERS.register_module()
class BALD(Scorer):
    """Mutual information between prediction and weights over MC-dropout samples."""
    requires = frozenset({MC_PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.bald(outputs[MC_PROBS])


@SCORERS.register_module()
class MCVariationRatio(Scorer):
    """Gal's variation ratio: disagreement of the argmax over MC-dropout samples."""
    requires = frozenset({MC_PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.mc_variation_ratio(outputs[MC_PROBS])


@SCORERS.register_module()
class Consistency(Scorer):
    """Symmetric KL between the prediction for an input and for its horizontal flip, computed
    exactly from log-probabilities (:func:`~mmal.scoring.functional.symmetric_kl_log`)."""
    requires = frozenset({LOG_PROBS, FLIP_LOG_PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.symmetric_kl_log(outputs[LOG_PROBS], outputs[FLIP_LOG_PROBS])


@SCORERS.register_module()
class Inconsistency(Scorer):
    """Variance of the prediction over augmented views of the image (Gao et al., ECCV 2020), the
    acquisition of consistency-based semi-supervised classification (MixMatch)."""
    requires = frozenset({AUG_PROBS})
    image_level = True

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.augmentation_variance(outputs[AUG_PROBS])


@SCORERS.register_module()
class LossPrediction(Scorer):
    """LLAL: the score is the loss that the loss-prediction module predicts for the image."""
    requires = frozenset({PRED_LOSS})
    image_level = True

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return outputs[PRED_LOSS].reshape(-1)


@SCORERS.register_module()
class DifficultyCalibratedUncertainty(Scorer):
    """PPAL's difficulty-calibrated uncertainty (DCUS, Yang et al., CVPR 2024): each kept box's
    binary entropy of its detection score, weighted by how hard its class was during training
    (:func:`~mmal.scoring.functional.difficulty_weights` of the per-class detection quality that
    :class:`~mmal.engine.ClassQualityHook` keeps as an EMA), summed over the image's boxes.

    PPAL ranks with it a candidate pool of ``k x budget`` images and then picks diverse ones among
    them: ``selection=dict(type='CategoryMatching')`` (:class:`~mmal.selection.CategoryMatching`).

    Args:
        alpha: Curvature of the class weights (PPAL: 0.3).
        upper_bound: Largest extra class weight (PPAL: 0.2).
        score_thr: Boxes scoring below it count nothing (PPAL: 0.05).
        aggregation: How box values become the image score (PPAL sums them).
        **kwargs: ``k``, ``empty_score`` and ``seed`` of :class:`Scorer`.
    """
    requires = frozenset({SCORES, LABELS, CLASS_QUALITY})

    def __init__(self, alpha: float = 0.3, upper_bound: float = 0.2, score_thr: float = 0.05,
                 aggregation: str = 'sum', **kwargs) -> None:
        super().__init__(aggregation=aggregation, **kwargs)
        if alpha <= 0 or upper_bound < 0:
            raise ValueError(f'alpha must be > 0 and upper_bound >= 0, got {alpha} and {upper_bound}.')
        self.alpha, self.upper_bound, self.score_thr = alpha, upper_bound, score_thr

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        scores = outputs[SCORES].float()
        weights = F.difficulty_weights(outputs[CLASS_QUALITY].float().to(scores.device), self.alpha, self.upper_bound)
        values = F.binary_entropy(scores) * weights[outputs[LABELS].long()]
        return torch.where(scores >= self.score_thr, values, torch.zeros_like(values))


@SCORERS.register_module()
class LocalizationStability(Scorer):
    """Kao et al.'s localization stability (ACCV 2018), as an uncertainty: one minus the
    score-weighted mean, over the image's kept boxes, of each box's stability (its mean IoU with the
    best-matching box detected on copies of the image with Gaussian pixel noise; the adapter's
    ``noise_levels``). An image whose boxes move under noise scores high; an image without a box
    gets ``empty_score``.
    """
    requires = frozenset({SCORES, BOX_STABILITY})
    image_level = True

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        scores = outputs[SCORES].float()
        return F.weighted_mean(1 - outputs[BOX_STABILITY].float(), scores, outputs[IMAGE_INDEX],
                               int(outputs[NUM_IMAGES]), self.empty_score)


@SCORERS.register_module()
class LocalizationTightness(Scorer):
    """Kao et al.'s localization tightness (ACCV 2018) with the classification score: per box
    ``1 - |T + P - 1|`` (:func:`~mmal.scoring.functional.localization_tightness`), ``T`` the IoU of
    its proposal with its refined box; the image score is the largest (the paper's
    ``min |T + P - 1|``). Needs a detector with proposals (two-stage)."""
    requires = frozenset({SCORES, PROPOSAL_IOU})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.localization_tightness(outputs[PROPOSAL_IOU].float(), outputs[SCORES].float())
