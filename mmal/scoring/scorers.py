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

from ..outputs import AUG_PROBS, FLIP_LOG_PROBS, LOG_PROBS, MC_PROBS, PRED_LOSS, PROBS, check_outputs
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
