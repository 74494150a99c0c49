"""Selecting what to label from scores or features. Pure torch, CPU or CUDA, no mmdet."""
from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
from torch import Tensor


def _ranking_key(scores: Tensor) -> Tensor:
    """Scores with every non-finite value (NaN, ±inf) moved below all finite ones, one warning."""
    finite = torch.isfinite(scores)
    num_bad = int((~finite).sum())
    if num_bad == 0:
        return scores
    warnings.warn(f'{num_bad} of {scores.numel()} acquisition scores are not finite (NaN or inf); '
                  'they rank last.', RuntimeWarning, stacklevel=3)
    return torch.where(finite, scores, torch.full_like(scores, -torch.inf))


def top_k(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` highest scores, highest first; ties go to the lower index.

    Non-finite scores never win: they rank below every finite score (in index order), with one
    warning giving their count.

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
    key = _ranking_key(scores.float() if not scores.is_floating_point() else scores)
    return key.argsort(descending=True, stable=True)[:k]


def random_subset(num_items: int, subset_size: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """``min(subset_size, num_items)`` distinct indices drawn uniformly, in random order.

    Args:
        num_items: Size ``N`` of the pool.
        subset_size: How many to draw.
        generator: Seeded generator (CPU) that makes the draw reproducible.

    Returns:
        int64 indices in ``[0, N)`` on the CPU.
    """
    return torch.randperm(num_items, generator=generator)[:subset_size]


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
        mean = features.mean(0)
        first = torch.addmv(sq_norms, features, mean, alpha=-2).argmax()
    else:
        first = min_dist.argmax()
    dist = torch.empty_like(min_dist)
    nxt = first
    for i in range(budget):
        picks[i] = nxt
        if i == budget - 1:
            break
        min_dist[nxt] = -torch.inf
        center = features.index_select(0, nxt.view(1)).squeeze(0)
        torch.addmv(sq_norms, features, center, alpha=-2, out=dist)
        dist += sq_norms[nxt]
        torch.minimum(min_dist, dist, out=min_dist)
        nxt = min_dist.argmax()
    return picks
