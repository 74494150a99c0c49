"""Nearest centers, k-means++ seeding and Lloyd's k-means in chunks of bounded memory. Pure torch.

Shared by the clustering-based selectors (:class:`~mmal.selection.TypiClust`,
:class:`~mmal.selection.ProbCover`). Squared Euclidean distances use
``|x|² - 2 x·c + |c|²``; every ``[n, k]`` block is at most ``chunk`` rows high.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .base import matvec


def nearest_center(x: Tensor, centers: Tensor, chunk: int = 4096) -> Tuple[Tensor, Tensor]:
    """Index of, and squared distance to, the nearest center of each row of ``x``.

    Args:
        x: ``[N, D]`` points.
        centers: ``[K, D]`` centers.
        chunk: Rows per distance block.

    Returns:
        ``([N] int64 index, [N] squared distance)``; ties go to the lower center index.
    """
    c_sq = (centers * centers).sum(1)
    index = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        d = torch.addmm(c_sq[None, :], block, centers.T, alpha=-2)
        d += (block * block).sum(1, keepdim=True)
        dist[start:start + chunk], index[start:start + chunk] = d.clamp_min_(0).min(1)
    return index, dist


def kmeans_plus_plus(x: Tensor, k: int, generator: Optional[torch.Generator] = None,
                     local_trials: Optional[int] = None) -> Tensor:
    """Greedy k-means++ seeding, as scikit-learn's ``kmeans_plusplus``: the first center uniformly;
    then, for each next one, ``local_trials`` candidates drawn with probability proportional to their
    squared distance to the nearest center so far, of which the one that lowers the total squared
    distance (the potential) most is kept. One trial is plain k-means++ (Arthur & Vassilvitskii, 2007).

    Args:
        x: ``[N, D]`` points.
        k: Number of centers (at most ``N``).
        generator: Seeded CPU generator.
        local_trials: Candidates per center; None: ``2 + int(log(k))`` (scikit-learn's default).

    Returns:
        ``[k]`` int64 indices of the chosen points.
    """
    num = x.shape[0]
    trials = 2 + int(math.log(k)) if local_trials is None else local_trials
    sq = (x * x).sum(1)
    picks = torch.empty(k, dtype=torch.long)
    picks[0] = int(torch.randint(num, (1, ), generator=generator))

    def distances(index: int) -> Tensor:
        dist = matvec(x, x[index]).mul_(-2)
        dist += sq
        dist += sq[index]
        return dist.clamp_min_(0)

    min_dist = distances(int(picks[0]))
    for i in range(1, k):
        weights = min_dist.double().cpu()
        if float(weights.sum()) <= 0:  # fewer distinct points than k: the rest uniformly
            weights = torch.ones(num, dtype=torch.float64)
            weights[picks[:i]] = 0
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator).tolist()
        best, best_dist, best_potential = -1, min_dist, math.inf
        for candidate in candidates:
            dist = torch.minimum(min_dist, distances(candidate))
            potential = float(dist.double().sum())
            if potential < best_potential:
                best, best_dist, best_potential = candidate, dist, potential
        picks[i], min_dist = best, best_dist
    return picks.to(x.device)


def kmeans(x: Tensor, k: int, generator: Optional[torch.Generator] = None, max_iters: int = 30,
           chunk: int = 4096) -> Tuple[Tensor, Tensor]:
    """Lloyd's k-means from a k-means++ seeding.

    A cluster that empties is re-seeded with the point farthest from its center. Stops when no
    assignment changes, or after ``max_iters`` iterations.

    Args:
        x: ``[N, D]`` floating-point points.
        k: Number of clusters (clipped to ``N``).
        generator: Seeded CPU generator (the seeding is the only random step).
        max_iters: Most Lloyd iterations.
        chunk: Rows per distance block.

    Returns:
        ``([N] int64 cluster of each point, [k, D] centers)``.
    """
    k = min(k, x.shape[0])
    centers = x[kmeans_plus_plus(x, k, generator)].clone()
    assign = torch.full((x.shape[0], ), -1, dtype=torch.long, device=x.device)
    for _ in range(max_iters):
        new_assign, dist = nearest_center(x, centers, chunk)
        counts = torch.bincount(new_assign, minlength=k)
        for empty in (counts == 0).nonzero().squeeze(1).tolist():
            far = int(dist.argmax())
            new_assign[far], dist[far] = empty, 0
            counts = torch.bincount(new_assign, minlength=k)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
        centers = torch.zeros_like(centers).index_add_(0, assign, x) / counts.clamp_min(1)[:, None].to(x.dtype)
    return assign, centers
