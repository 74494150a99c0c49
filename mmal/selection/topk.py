"""Ranking by score: ``top_k`` and the ``TopK`` / ``RandomSubsetTopK`` selectors. Pure torch."""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor

from ..registry import SELECTORS
from .base import Selector, random_subset, ranking_key
from .sharded import sharded_top_k


def top_k(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` highest scores, highest first; ties go to the lower index.

    Non-finite scores never win: they rank below every finite score (in index order), with one
    warning giving their count. Runs ``torch.topk`` and sorts only what beats the cut-off value
    stably, then appends the ties at the cut-off in index order: the same indices, in the same
    order, as a stable sort of the whole pool, without sorting it.

    Args:
        scores: ``[N]`` scores.
        k: How many to return; at most ``N`` are returned.

    Returns:
        ``[min(k, N)]`` int64 indices into ``scores``, on its device.
    """
    if scores.dim() != 1:
        raise ValueError(f'scores must be 1-D, got shape {tuple(scores.shape)}.')
    if k < 0:
        raise ValueError(f'k must be >= 0, got {k}.')
    key = ranking_key(scores)
    k = min(k, key.numel())
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=key.device)
    if 4 * k >= key.numel():  # most of the pool: a full stable sort is as cheap
        return key.argsort(descending=True, stable=True)[:k]
    cut = torch.topk(key, k, sorted=False).values.min()
    above = (key > cut).nonzero().squeeze(1)  # fewer than k, in index order
    above = above[key[above].argsort(descending=True, stable=True)]
    ties = (key == cut).nonzero().squeeze(1)[:k - above.numel()]
    return torch.cat([above, ties])


def random_selection(num_items: int, k: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Random acquisition: ``k`` distinct pool indices from one seeded generator."""
    return random_subset(num_items, k, generator)


def random_subset_then_top_k(scores: Tensor,
                             k: int,
                             subset_size: int = 10000,
                             generator: Optional[torch.Generator] = None) -> Tensor:
    """The study's diversity heuristic: the top ``k`` of a random ``subset_size`` pre-subset.

    Only the subset's scores are read, so a caller may score just ``random_subset(...)`` with the
    same generator state and leave the other entries unset.

    Args:
        scores: ``[N]`` scores of the whole unlabeled pool.
        k: How many to select.
        subset_size: Size of the random pre-subset (10,000 in the study).
        generator: Seeded generator that draws the subset.

    Returns:
        ``[min(k, subset_size, N)]`` indices into the full pool, highest score first.
    """
    subset = random_subset(scores.shape[0], subset_size, generator).to(scores.device)
    return subset[top_k(scores[subset], k)]


@SELECTORS.register_module()
class TopK(Selector):
    """The ``budget`` highest scores. Non-finite scores rank last (with a warning).

    Args:
        tie_break: ``'random'`` (default): equal scores are ordered by a seeded random
            permutation, so a weak model that scores many images alike (e.g. no box anywhere)
            does not pick in pool order; ``'index'``: the lower candidate position first.
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    def __init__(self, tie_break: str = 'random', **kwargs) -> None:
        super().__init__(**kwargs)
        if tie_break not in ('random', 'index'):
            raise ValueError(f"tie_break must be 'random' or 'index', got {tie_break!r}.")
        self.tie_break = tie_break

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        scores = self.scores_of(scores)
        rows = (~labeled).nonzero().squeeze(1)
        if self.tie_break == 'index':
            return rows[top_k(scores[rows], budget)]
        shuffled = rows[torch.randperm(rows.numel(), generator=self.generator)]
        return shuffled[top_k(scores[shuffled], budget)]

    shardable = True

    def select_sharded(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor,
                       ids: Tensor, kept: Tensor, kept_labeled: Tensor) -> Tensor:
        scores = self.scores_of(scores)
        unlabeled = kept[~kept_labeled]  # the rows select() sees, in its order
        order = unlabeled if self.tie_break == 'index' else \
            unlabeled[torch.randperm(unlabeled.numel(), generator=self.generator)]
        position = torch.full((int(kept.max()) + 1 if kept.numel() else 0, ), -1, dtype=torch.long)
        position[order] = torch.arange(order.numel())
        mine = ~labeled
        return sharded_top_k(ranking_key(scores[mine]), position[ids[mine]], ids[mine], budget)


@SELECTORS.register_module()
class RandomSubsetTopK(TopK):
    """The study's diversity heuristic: score a random ``subset_size`` (10,000) of the unlabeled
    pool only, then take the top ``budget`` of it (:class:`TopK` with a default subset)."""

    def __init__(self, subset_size: int = 10000, **kwargs) -> None:
        super().__init__(subset_size=subset_size, **kwargs)
