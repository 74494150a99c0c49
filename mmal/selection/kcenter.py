"""Core-set selection: greedy k-center (Sener & Savarese, 2018). Pure torch."""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Union

import torch
from torch import Tensor

from ..outputs import FEATURES
from ..registry import SELECTORS
from .base import FeatureSelector, matvec
from .sharded import sharded_k_center


def k_center_greedy(features: Tensor,
                    labeled: Union[Tensor, None],
                    budget: int,
                    chunk_size: int = 256) -> Tensor:
    """Core-set selection by greedy k-center (Sener & Savarese, 2018).

    Repeatedly picks the unlabeled point farthest (Euclidean) from everything labeled or picked so
    far. Memory is O(N·D + N): the distance of every point to its nearest center is kept as one
    ``[N]`` vector; the labeled set is folded in ``chunk_size`` centers at a time (one ``[N, chunk]``
    block), and each pick costs one matrix-vector product over the features, i.e. one read of
    them. Everything stays on the features' device, without host synchronisation per pick.

    Distances use ``|x|² - 2 x·c + |c|²``. With no labeled point the first pick is the point
    farthest from the pool mean. Ties go to the lower index.

    Args:
        features: ``[N, D]`` floating-point features of the whole pool.
        labeled: ``[N]`` bool mask or a 1-D tensor of labeled indices (``None``: nothing labeled).
        budget: How many to pick.
        chunk_size: Labeled centers per distance block.

    Returns:
        ``[min(budget, unlabeled)]`` int64 pool indices in pick order, none labeled, none twice.
        Warns when fewer unlabeled points than ``budget`` remain.
    """
    if features.dim() != 2 or not features.is_floating_point():
        raise ValueError(f'features must be a floating-point [N, D] tensor, got {features.dtype} '
                         f'{tuple(features.shape)}.')
    num, device = features.shape[0], features.device
    mask = torch.zeros(num, dtype=torch.bool, device=device)
    if labeled is not None:
        labeled = labeled.to(device)
        if labeled.dtype == torch.bool:
            if labeled.shape != (num, ):
                raise ValueError(f'labeled mask has shape {tuple(labeled.shape)}, expected ({num},).')
            mask |= labeled
        else:
            mask[labeled.long()] = True
    num_unlabeled = num - int(mask.sum())
    if budget > num_unlabeled:
        warnings.warn(f'k_center_greedy: budget {budget} exceeds the {num_unlabeled} unlabeled points; '
                      'returning all of them.', RuntimeWarning, stacklevel=2)
        budget = num_unlabeled
    picks = torch.empty(max(budget, 0), dtype=torch.long, device=device)
    if budget <= 0:
        return picks

    sq_norms = (features * features).sum(1)
    min_dist = torch.full((num, ), torch.inf, dtype=features.dtype, device=device)
    centers = mask.nonzero().squeeze(1)
    for start in range(0, len(centers), chunk_size):
        chunk = features[centers[start:start + chunk_size]]
        block = torch.addmm(sq_norms[:, None], features, chunk.T, alpha=-2)
        block += sq_norms[centers[start:start + chunk_size]][None, :]
        torch.minimum(min_dist, block.amin(1), out=min_dist)
    min_dist[mask] = -torch.inf  # labeled (and, below, picked) points are never candidates

    if len(centers) == 0:
        first = (sq_norms - 2 * matvec(features, features.mean(0))).argmax()
    else:
        first = min_dist.argmax()
    nxt = first
    for i in range(budget):
        picks[i] = nxt
        if i == budget - 1:
            break
        min_dist[nxt] = -torch.inf
        dist = matvec(features, features.index_select(0, nxt.view(1)).squeeze(0)).mul_(-2)
        dist += sq_norms
        dist += sq_norms[nxt]
        torch.minimum(min_dist, dist, out=min_dist)
        nxt = min_dist.argmax()
    return picks


@SELECTORS.register_module()
class KCenterGreedy(FeatureSelector):
    """Core-set: k-center greedy on the adapter's image ``features``, labeled images as the
    initial centers (:func:`k_center_greedy`).

    Args:
        chunk_size: Labeled centers per distance block.
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    def __init__(self, chunk_size: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chunk_size = chunk_size

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        return k_center_greedy(inputs[FEATURES], labeled, budget, chunk_size=self.chunk_size)

    shardable = True

    def select_sharded(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor,
                       ids: Tensor, kept: Tensor, kept_labeled: Tensor) -> Tensor:
        budget = min(budget, int((~kept_labeled).sum()))
        return sharded_k_center(inputs[FEATURES], ids, labeled, budget, chunk_size=self.chunk_size)
