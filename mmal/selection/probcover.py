"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022): greedy maximum coverage of
δ-balls. Pure torch.

As the authors' code: every (L2-normalised) image is a vertex, with an edge to each image within
distance ``delta`` (itself included). The labeled images cover their balls first; then the image
whose ball holds the most uncovered images is picked, its ball covered, and so on. Once
everything is covered, the rest of the budget is drawn uniformly from the unlabeled images.

``delta=None`` estimates it as the paper does: the largest δ for which at least ``purity`` (0.95)
of the balls are pure with respect to a k-means clustering of the features (``num_classes``
clusters). A ball around ``x`` is pure exactly when δ does not exceed the distance from ``x`` to
the nearest point of another cluster, so that δ is the ``1 - purity`` quantile of those distances,
taken over a random sample of ``sample_size`` points.

The graph holds every pair of images closer than δ, so at a fixed δ its size grows with the square
of the pool. Before it is built, its edge count is estimated from a sample of balls: a graph of
more than ``max_edges`` edges is refused with the fix (``subset_size``, a smaller δ) instead of
running out of memory. It is built exactly, or on a faiss index (:mod:`~mmal.selection.neighbours`;
``search='auto'``: from 20,000 images on, when the balls are small, at most ``sqrt(N)`` images on
average: then the N² distances are the cost, which faiss avoids).
"""
from __future__ import annotations

import math
from typing import List, Mapping, Optional

import torch
from torch import Tensor

from ..registry import SELECTORS
from .base import FeatureSelector
from .kmeans import kmeans
from .neighbours import block_rows, check_search, estimate_edges, radius_graph, uses_faiss


def estimate_delta(x: Tensor, num_classes: int, purity: float, sample_size: int,
                   generator: Optional[torch.Generator] = None, chunk: Optional[int] = None) -> float:
    """The largest radius for which at least ``purity`` of the sampled balls are pure.

    Args:
        x: ``[N, D]`` points.
        num_classes: Clusters of the k-means that stands in for the classes.
        purity: Required fraction of pure balls.
        sample_size: Ball centers sampled to estimate the fraction.
        generator: Seeded CPU generator.
        chunk: Rows per distance block (None: a block of at most 2**26 distances).

    Returns:
        δ (positive).
    """
    chunk = chunk or block_rows(x.shape[0])
    assign, _ = kmeans(x, num_classes, generator)
    sample = torch.randperm(x.shape[0], generator=generator)[:sample_size].to(x.device)
    sq = (x * x).sum(1)
    nearest_other = torch.empty(sample.numel(), dtype=x.dtype, device=x.device)
    for start in range(0, sample.numel(), chunk):
        rows = sample[start:start + chunk]
        d = torch.addmm(sq[None, :], x[rows], x.T, alpha=-2)
        d += sq[rows, None]
        d[assign[None, :] == assign[rows, None]] = torch.inf
        nearest_other[start:start + chunk] = d.amin(1).clamp_min(0).sqrt()
    delta = float(torch.quantile(nearest_other.double().cpu(), 1 - purity))
    return delta if delta > 0 else float(nearest_other[nearest_other > 0].min())


@SELECTORS.register_module()
class ProbCover(FeatureSelector):
    """Maximum coverage of δ-balls around the picks and the labeled images (no scorer).

    Args:
        delta: Ball radius (on L2-normalised features unless ``normalize=False``); None
            estimates it from ``purity``.
        purity: Fraction of pure balls of the estimated δ (0.95 in the paper).
        num_classes: k-means clusters standing in for the classes in the purity estimate.
        sample_size: Ball centers sampled for the purity estimate.
        normalize: L2-normalise the features first.
        search: How the δ-balls are found: ``'auto'`` (faiss from 20,000 images on for small balls,
            when installed), ``'exact'`` or ``'faiss'`` (:mod:`~mmal.selection.neighbours`).
        nprobe: Cells of the faiss index scanned per ball.
        max_edges: The largest graph built (4 bytes an edge once built, about 16 while it is built on
            faiss).
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    def __init__(self, delta: Optional[float] = None, purity: float = 0.95, num_classes: int = 10,
                 sample_size: int = 2000, normalize: bool = True, search: str = 'auto', nprobe: int = 32,
                 max_edges: int = 200_000_000, **kwargs) -> None:
        super().__init__(normalize=normalize, **kwargs)
        if delta is not None and not delta > 0:
            raise ValueError(f'delta must be positive or None, got {delta!r}.')
        if not 0 < purity < 1:
            raise ValueError(f'purity must lie in (0, 1), got {purity!r}.')
        self.delta, self.purity, self.num_classes = delta, purity, num_classes
        self.sample_size = sample_size
        self.search, self.nprobe, self.max_edges = check_search(search), nprobe, max_edges

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        x = self.features(inputs)
        delta = self.delta
        if delta is None:
            delta = estimate_delta(x, self.num_classes, self.purity, self.sample_size, self.generator)
        self.last_delta = delta
        edges = estimate_edges(x, delta, generator=self.generator)
        if edges > self.max_edges:
            fits = int(x.shape[0] * math.sqrt(self.max_edges / edges) * 0.9)
            raise ValueError(
                f'ProbCover\'s graph at delta={delta:.4g} would hold about {edges:.3g} edges for {x.shape[0]:,} '
                f'images, more than max_edges={self.max_edges:,}: select from a random part of the pool '
                f'(selection subset_size={fits:,} or fewer), give a smaller delta, or raise max_edges.')
        search = self.search
        if search == 'auto':  # faiss for a sparse graph only: a dense one costs its edges, which faiss does not
            # reduce (and its symmetric union takes 4x the memory); a sparse one costs the N² distances, which it avoids
            search = 'faiss' if uses_faiss('auto', x.shape[0]) and edges <= x.shape[0] ** 1.5 else 'exact'
        indptr, indices = radius_graph(x, delta, search, self.nprobe, self.seed or 0)
        return greedy_cover(indptr, indices, labeled, min(budget, int((~labeled).sum())), self.generator)


def greedy_cover(indptr: Tensor, indices: Tensor, labeled: Tensor, budget: int,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Greedy maximum coverage on a symmetric graph in CSR form.

    Args:
        indptr: ``[N + 1]`` row pointers.
        indices: ``[E]`` neighbours.
        labeled: ``[N]`` bool: these vertices are never picked and cover their neighbours first.
        budget: How many to pick (at most the unlabeled count).
        generator: Draws the uniform picks once everything is covered.

    Returns:
        ``[budget]`` int64 vertices in pick order; ties go to the lower index.
    """
    num = labeled.shape[0]
    covered = torch.zeros(num, dtype=torch.bool, device=indptr.device)
    covered[neighbours_of(indptr, indices, labeled.nonzero().squeeze(1))] = True
    # degree[v] = uncovered vertices in v's ball: a segment sum over v's row of the CSR
    running = torch.cat([indptr.new_zeros(1), (~covered[indices.long()]).cumsum(0)])
    degree = running[indptr[1:]] - running[indptr[:-1]]
    del running
    available = ~labeled.clone()
    picks: List[int] = []
    while len(picks) < budget:
        masked = torch.where(available, degree, torch.full_like(degree, -1))
        best = int(masked.argmax())
        if int(masked[best]) <= 0:
            break
        picks.append(best)
        available[best] = False
        ball = indices[indptr[best]:indptr[best + 1]].long()
        newly = ball[~covered[ball]]
        covered[newly] = True
        # every vertex whose ball holds a newly covered vertex loses one per such vertex (symmetric graph)
        lost = neighbours_of(indptr, indices, newly)
        degree.index_add_(0, lost, torch.full_like(lost, -1))
    rest = budget - len(picks)
    if rest > 0:
        remaining = available.nonzero().squeeze(1)
        picks += remaining[torch.randperm(remaining.numel(), generator=generator)[:rest].to(remaining.device)].tolist()
    return torch.tensor(picks, dtype=torch.long, device=labeled.device)


def neighbours_of(indptr: Tensor, indices: Tensor, vertices: Tensor) -> Tensor:
    """The concatenated rows of ``vertices`` in the CSR graph (int64)."""
    starts, ends = indptr[vertices], indptr[vertices + 1]
    return indices[torch.repeat_interleave(starts, ends - starts) + _ranges(ends - starts)].long()


def _ranges(lengths: Tensor) -> Tensor:
    """``cat([arange(n) for n in lengths])`` without a Python loop."""
    total = int(lengths.sum())
    offsets = torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
    return torch.arange(total, device=lengths.device) - offsets
