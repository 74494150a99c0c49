"""Registered acquisition functions (baal's shape: one small class per function).

A scorer declares in ``requires`` which model outputs it needs, so an adapter computes only those,
and overrides :meth:`Scorer.compute` alone. Reduction of per-box values to image scores,
non-finite handling and ranking are shared by every scorer.

The outputs an adapter hands over, per batch (``M`` boxes or images, ``N`` images, ``C`` classes):

===============  =================  ===========================================================
key              shape              meaning
===============  =================  ===========================================================
``probs``        ``[M, C]``         class probabilities
``mc_probs``     ``[T, M, C]``      probabilities of ``T`` Monte-Carlo dropout passes
``flip_probs``   ``[M, C]``         probabilities of the horizontally flipped input, aligned
``features``     ``[N, D]``         one feature vector per image
``pred_loss``    ``[N]``            predicted loss per image (LLAL)
``aug_probs``    ``[K, N, C]``      probabilities of ``K`` augmented views of each image
``image_index``  ``[M]``            image of each box; absent when the ``M`` items are images
``num_images``   ``int``            ``N``
===============  =================  ===========================================================
"""
from __future__ import annotations

from typing import Any, ClassVar, FrozenSet, Mapping, Optional

import torch
from torch import Tensor

from ..registry import SCORERS
from ..selection import k_center_greedy, top_k
from . import functional as F

PROBS, MC_PROBS, FLIP_PROBS, FEATURES, PRED_LOSS = 'probs', 'mc_probs', 'flip_probs', 'features', 'pred_loss'
AUG_PROBS = 'aug_probs'
OUTPUT_KEYS = frozenset({PROBS, MC_PROBS, FLIP_PROBS, FEATURES, PRED_LOSS, AUG_PROBS})


class Scorer:
    """Base class: turns model outputs into one score per image and ranks them.

    Args:
        aggregation: How per-box values become an image score: ``'max'``, ``'mean'``, ``'sum'``
            or ``'topk_mean'`` (see :func:`mmal.scoring.functional.aggregate`).
        k: Boxes per image for ``'topk_mean'``.
        empty_score: Score of an image without any box.
    """

    #: Model outputs this scorer reads (keys of the table in the module docstring).
    requires: ClassVar[FrozenSet[str]] = frozenset()
    #: True when :meth:`compute` already returns one value per image (never aggregated).
    image_level: ClassVar[bool] = False

    def __init__(self, aggregation: str = 'max', k: int = 3, empty_score: float = 0.0) -> None:
        if aggregation not in F.AGGREGATION_MODES:
            raise ValueError(f'unknown aggregation {aggregation!r}; choose one of {F.AGGREGATION_MODES}.')
        self.aggregation, self.k, self.empty_score = aggregation, k, empty_score

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        """The scoring step: one value per item (box or image), higher = more worth labeling."""
        raise NotImplementedError

    def __call__(self, outputs: Mapping[str, Any]) -> Tensor:
        """Image-level scores ``[N]`` of one batch of model outputs."""
        missing = self.requires - outputs.keys()
        if missing:
            raise KeyError(f'{type(self).__name__} needs the model outputs {sorted(missing)}, which the '
                           'adapter did not provide; build the adapter with this scorer\'s `requires`.')
        values = self.compute(outputs)
        if not self.image_level and 'image_index' in outputs:
            values = F.aggregate(values, outputs['image_index'], outputs['num_images'], self.aggregation,
                                 self.k, self.empty_score)
        return values

    def select(self, scores: Tensor, budget: int, labeled: Optional[Tensor] = None) -> Tensor:
        """Pool indices to label next, best first. Non-finite scores rank last (with a warning).

        Args:
            scores: ``[N]`` scores of the candidate images.
            budget: How many to select.
            labeled: Unused by ranking scorers (see :class:`CoreSet`).

        Returns:
            int64 indices into ``scores``.
        """
        return top_k(scores, budget)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(aggregation={self.aggregation!r})'


@SCORERS.register_module()
class Random(Scorer):
    """Random acquisition: uniform scores from one seeded generator, so a trial is reproducible.

    Args:
        seed: Seed of the generator.
    """
    image_level = True

    def __init__(self, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator = torch.Generator().manual_seed(seed)

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
    """Symmetric KL between the prediction for an input and for its horizontal flip."""
    requires = frozenset({PROBS, FLIP_PROBS})

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return F.symmetric_kl(outputs[PROBS], outputs[FLIP_PROBS])


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
class CoreSet(Scorer):
    """Core-set: k-center greedy on image features instead of ranking a score.

    ``__call__`` returns the batch's ``[N, D]`` features; :meth:`select` takes the features of the
    whole pool, labeled images included, with their ``labeled`` mask.

    Args:
        chunk_size: Labeled centers per distance block in :func:`k_center_greedy`.
    """
    requires = frozenset({FEATURES})
    image_level = True

    def __init__(self, chunk_size: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chunk_size = chunk_size

    def compute(self, outputs: Mapping[str, Any]) -> Tensor:
        return outputs[FEATURES].flatten(1)

    def select(self, scores: Tensor, budget: int, labeled: Optional[Tensor] = None) -> Tensor:
        return k_center_greedy(scores, labeled, budget, chunk_size=self.chunk_size)
