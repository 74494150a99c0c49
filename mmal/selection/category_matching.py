"""PPAL's diversity step (Yang et al., CVPR 2024): category-conditioned matching similarity and
k-medoids over the most uncertain ``pool_factor x budget`` images. Pure torch.

Two images are compared box by box: each box of image ``j`` is matched to the most similar box of
the *same class* in image ``i`` (cosine similarity of the detector's per-box classification
features), and ``d(i <- j)`` is the score-weighted mean over ``j``'s boxes of ``1 - cos`` (2 when
``i`` has no box of that class). The distance of the two images is ``(d(i <- j) + d(j <- i)) / 2``.
The batch is the medoids of a k-medoids clustering of the candidates under that distance,
seeded by k-center greedy from a random first image (as PPAL's code).

An image is kept as at most ``max_boxes`` boxes (its highest-scoring ones above ``score_thr``),
with features L2-normalised in float16: ``max_boxes * (D * 2 + 8)`` bytes per scored image.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as nnf
from torch import Tensor

from ..outputs import IMAGE_INDEX, LABELS, LAST_LAYER_INPUT, NUM_IMAGES, SCORES
from ..registry import SELECTORS
from .base import Selector
from .topk import top_k

BOX_LABELS, BOX_SCORES, BOX_FEATS = 'ccms_labels', 'ccms_scores', 'ccms_feats'


def image_boxes(labels: Tensor, scores: Tensor, feats: Tensor, image_index: Tensor, num_images: int,
                max_boxes: int, score_thr: float) -> Dict[str, Tensor]:
    """Each image's ``max_boxes`` highest-scoring boxes above ``score_thr``, padded.

    Returns:
        ``{BOX_LABELS: [N, B] int64 (-1 = no box), BOX_SCORES: [N, B], BOX_FEATS: [N, B, D] float16
        L2-normalised}``.
    """
    keep = scores >= score_thr
    labels, scores, feats, image_index = labels[keep], scores[keep].float(), feats[keep], image_index[keep]
    out_labels = torch.full((num_images, max_boxes), -1, dtype=torch.long, device=scores.device)
    out_scores = scores.new_zeros((num_images, max_boxes))
    out_feats = torch.zeros((num_images, max_boxes, feats.shape[1]), dtype=torch.float16, device=scores.device)
    if scores.numel():
        # by score within each image: sort by score, then stably by image; a box's slot is its rank
        order = scores.argsort(descending=True, stable=True)
        order = order[image_index[order].argsort(stable=True)]
        images = image_index[order]
        counts = torch.bincount(images, minlength=num_images)
        slot = torch.arange(len(order), device=order.device) - (counts.cumsum(0) - counts)[images]
        order, images, slot = order[slot < max_boxes], images[slot < max_boxes], slot[slot < max_boxes]
        out_labels[images, slot] = labels[order].long()
        out_scores[images, slot] = scores[order]
        out_feats[images, slot] = nnf.normalize(feats[order].float(), dim=1).half()
    return {BOX_LABELS: out_labels, BOX_SCORES: out_scores, BOX_FEATS: out_feats}


def matching_distances(labels: Tensor, scores: Tensor, feats: Tensor, chunk: int = 4096) -> Tensor:
    """The ``[P, P]`` category-conditioned matching distances of ``P`` images (see the module docstring).

    Args:
        labels: ``[P, B]`` box labels, -1 for padding.
        scores: ``[P, B]`` box scores (the weights).
        feats: ``[P, B, D]`` L2-normalised box features.
        chunk: Boxes compared at once (memory ``P x chunk``).

    Returns:
        Symmetric ``[P, P]`` float32 distances in ``[0, 2]``, zero on the diagonal. An image without a
        box is at 0 from another such image and at 2 from every image with one.
    """
    num = labels.shape[0]
    valid = labels >= 0
    image = torch.arange(num, device=labels.device)[:, None].expand_as(labels)[valid]
    label, weight, feat = labels[valid], scores[valid].float(), feats[valid].float()
    directed = torch.zeros((num, num), dtype=torch.float32, device=labels.device)  # [i, j]: d(i <- j) * mass_j
    for c in label.unique().tolist():
        of_class = (label == c).nonzero().squeeze(1)
        f, img = feat[of_class], image[of_class]
        for start in range(0, len(of_class), chunk):
            cols = slice(start, start + chunk)
            sim = f @ f[cols].T  # [Nc, chunk]
            best = torch.full((num, sim.shape[1]), -torch.inf, device=sim.device)
            best.scatter_reduce_(0, img[:, None].expand_as(sim), sim, reduce='amax')
            dist = torch.where(torch.isfinite(best), (1 - best).clamp_(0, 2), torch.full_like(best, 2.0))
            directed.index_add_(1, img[cols], dist * weight[of_class][cols])
    mass = torch.zeros(num, device=labels.device).index_add_(0, image, weight)
    has_box = mass > 0
    directed = directed / mass.clamp_min(torch.finfo(torch.float32).tiny)
    directed[:, ~has_box] = torch.where(has_box, 2.0, 0.0)[:, None].expand(-1, int((~has_box).sum()))
    out = (directed + directed.T) / 2
    out.fill_diagonal_(0)
    return out


def k_medoids(dist: Tensor, k: int, generator: Optional[torch.Generator] = None, iterations: int = 100) -> Tensor:
    """``k`` medoids of the points of the ``[P, P]`` distance matrix ``dist``.

    Seeded by k-center greedy from a random first point; then each point joins its nearest medoid
    (a medoid always its own cluster) and each cluster's new medoid is the member with the least
    total distance to the others, until nothing changes or ``iterations`` rounds ran.

    Returns:
        ``[min(k, P)]`` int64 distinct point indices.
    """
    num = dist.shape[0]
    k = min(k, num)
    if k == 0:
        return torch.empty(0, dtype=torch.long)
    medoids = torch.empty(k, dtype=torch.long)
    medoids[0] = int(torch.randint(num, (1, ), generator=generator))
    nearest = dist[:, medoids[0]].clone()
    for i in range(1, k):
        nearest[medoids[:i]] = -1
        medoids[i] = int(nearest.argmax())
        torch.minimum(nearest, dist[:, medoids[i]], out=nearest)
    medoids = medoids.to(dist.device)
    for _ in range(iterations):
        assign = dist[:, medoids].argmin(1)
        assign[medoids] = torch.arange(k, device=dist.device)
        updated = medoids.clone()
        for cluster in range(k):
            members = (assign == cluster).nonzero().squeeze(1)
            if len(members) > 1:
                updated[cluster] = members[dist[members][:, members].sum(1).argmin()]
        if torch.equal(updated, medoids):
            break
        medoids = updated
    return medoids


@SELECTORS.register_module()
class CategoryMatching(Selector):
    """PPAL's second step: the ``budget`` k-medoids of the ``pool_factor x budget`` highest-scored
    images under the category-conditioned matching distance (see the module docstring). With the
    :class:`~mmal.scoring.DifficultyCalibratedUncertainty` scorer it is PPAL; any per-image score
    works. Detectors only (it reads each kept box's ``labels``, ``scores`` and classification
    features ``last_layer_input``).

    Args:
        pool_factor: Candidates per budget image (PPAL's ``budget_expand_ratio``, 4).
        max_boxes: Boxes kept per image.
        score_thr: Boxes scoring below it are not compared (0.05, PPAL's threshold of its uncertainty step).
        iterations: Largest number of k-medoids rounds.
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """
    requires = frozenset({LABELS, SCORES, LAST_LAYER_INPUT})

    def __init__(self, pool_factor: int = 4, max_boxes: int = 20, score_thr: float = 0.05, iterations: int = 100,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in (('pool_factor', pool_factor), ('max_boxes', max_boxes), ('iterations', iterations)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}.')
        self.pool_factor, self.max_boxes, self.iterations = pool_factor, max_boxes, iterations
        self.score_thr = score_thr

    def image_inputs(self, outputs: Mapping) -> Dict[str, Tensor]:
        if IMAGE_INDEX not in outputs:
            raise TypeError('CategoryMatching compares the boxes of detections; a classifier has none.')
        return image_boxes(outputs[LABELS], outputs[SCORES], outputs[LAST_LAYER_INPUT], outputs[IMAGE_INDEX],
                           int(outputs[NUM_IMAGES]), self.max_boxes, self.score_thr)

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        scores = self.scores_of(scores)
        eligible = (~labeled).nonzero().squeeze(1)
        budget = min(budget, eligible.numel())
        pool = eligible[top_k(scores[eligible], self.pool_factor * budget)]
        if pool.numel() <= budget:
            return pool
        dist = matching_distances(inputs[BOX_LABELS][pool], inputs[BOX_SCORES][pool], inputs[BOX_FEATS][pool])
        picks = pool[k_medoids(dist, budget, self.generator, self.iterations).to(pool.device)]
        return picks[scores[picks].argsort(descending=True, stable=True)]

    def __repr__(self) -> str:
        return (f'CategoryMatching(pool_factor={self.pool_factor}, max_boxes={self.max_boxes}, '
                f'score_thr={self.score_thr}, subset_size={self.subset_size})')
