"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): the most typical image of the least covered
clusters. Pure torch.

As the authors' code: the (L2-normalised) features of the whole pool are clustered by k-means into
``min(labeled + budget, max_clusters)`` clusters; clusters of at most ``min_cluster_size`` images
are dropped; the others are visited in order of fewest labeled images, then largest size, cycling
when the budget exceeds their number. From each visited cluster the unlabeled image of highest
typicality is picked: the inverse mean squared distance to its ``k`` nearest unlabeled
neighbours in the cluster, ``k = min(k_nn, cluster size // 2)``. A cluster of 20,000 images or more
finds those neighbours on a faiss index when faiss is installed (``search``;
:mod:`~mmal.selection.neighbours`): with few clusters of a large pool, exact neighbours cost the
square of a cluster's size at every visit.
"""
from __future__ import annotations

from typing import List, Mapping, Optional

import torch
from torch import Tensor

from ..registry import SELECTORS
from .base import FeatureSelector
from .kmeans import kmeans
from .neighbours import check_search, knn_sq_distances


def typicality(x: Tensor, k: int, search: str = 'exact', nprobe: int = 32, seed: int = 0,
               chunk: int = 2048) -> Tensor:
    """``1 / (mean squared distance to the k nearest other points + 1e-5)`` of each row of ``x``.

    Args:
        x: ``[n, D]`` points.
        k: Neighbours (at least 1; clipped to ``n - 1``).
        search: ``'auto'``, ``'exact'`` or ``'faiss'`` (:func:`~mmal.selection.neighbours.knn_sq_distances`).
        nprobe: Cells of the faiss index scanned per point.
        seed: Seed of the faiss index.
        chunk: Rows per exact distance block.

    Returns:
        ``[n]`` typicalities; a single point gets 1e5.
    """
    n = x.shape[0]
    k = min(max(k, 1), n - 1)
    if k == 0:
        return torch.full((n, ), 1e5, dtype=x.dtype, device=x.device)
    return 1 / (knn_sq_distances(x, k, search, nprobe, seed, chunk).mean(1) + 1e-5)


@SELECTORS.register_module()
class TypiClust(FeatureSelector):
    """Typical images of uncovered clusters, for the low-budget regime (no scorer).

    Args:
        max_clusters: Most k-means clusters (500 in the authors' code).
        min_cluster_size: Clusters of at most this many images are never visited (5).
        k_nn: Neighbours of the typicality (20).
        normalize: L2-normalise the features first (the authors' self-supervised embeddings are).
        max_iters: Lloyd iterations of the k-means.
        search: How the neighbours are found: ``'auto'`` (faiss for clusters of 20,000 images or
            more, when installed), ``'exact'`` or ``'faiss'``.
        nprobe: Cells of the faiss index scanned per image.
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    def __init__(self, max_clusters: int = 500, min_cluster_size: int = 5, k_nn: int = 20, normalize: bool = True,
                 max_iters: int = 30, search: str = 'auto', nprobe: int = 32, **kwargs) -> None:
        super().__init__(normalize=normalize, **kwargs)
        self.max_clusters, self.min_cluster_size, self.k_nn = max_clusters, min_cluster_size, k_nn
        self.max_iters, self.search, self.nprobe = max_iters, check_search(search), nprobe

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        x = self.features(inputs)
        available = ~labeled.clone()
        budget = min(budget, int(available.sum()))
        num_clusters = min(int(labeled.sum()) + budget, self.max_clusters)
        assign, _ = kmeans(x, num_clusters, self.generator, self.max_iters)
        sizes = torch.bincount(assign, minlength=num_clusters)
        covered = torch.bincount(assign[labeled], minlength=num_clusters)
        clusters = (sizes > self.min_cluster_size).nonzero().squeeze(1)
        if clusters.numel() == 0:  # a tiny pool: every cluster is small
            clusters = sizes.nonzero().squeeze(1)
        # Fewest labeled first, then largest, then lowest id: one stable sort per key, minor first.
        clusters = clusters[(-sizes[clusters]).argsort(stable=True)]
        clusters = clusters[covered[clusters].argsort(stable=True)]
        picks: List[int] = []
        visit = 0
        while len(picks) < budget:
            cluster = int(clusters[visit % len(clusters)])
            visit += 1
            members = ((assign == cluster) & available).nonzero().squeeze(1)
            if members.numel() == 0:
                if not bool(available[(assign[None, :] == clusters[:, None]).any(0)].any()):
                    clusters = sizes.nonzero().squeeze(1)  # the visited ones are exhausted: all clusters
                continue
            best = members[typicality(x[members], min(self.k_nn, members.numel() // 2), self.search, self.nprobe,
                                          self.seed or 0).argmax()]
            picks.append(int(best))
            available[best] = False
        return torch.tensor(picks, dtype=torch.long, device=labeled.device)
