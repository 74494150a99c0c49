"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings. Pure torch.

The gradient embedding of an image is the gradient of the cross-entropy with the predicted label
with respect to the last layer's weights: the outer product ``g ⊗ h`` of ``g = p - onehot(argmax
p)`` (the gradient with respect to the logits) and ``h``, the last layer's input. It is kept
factorised, ``[N, K]`` and ``[N, D]`` instead of ``[N, K·D]``: distances follow from
``|g_i⊗h_i - g_j⊗h_j|² = |g_i|²|h_i|² + |g_j|²|h_j|² - 2 (g_i·g_j)(h_i·h_j)``, so memory is
``N·(K+D)`` and each pick reads the embeddings once.

Detectors have one embedding per kept box; an image is represented by its box with the largest
gradient norm (its most uncertain confident detection); an image without a box has the zero
embedding.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import Tensor

from ..outputs import IMAGE_INDEX, LAST_LAYER_INPUT, NUM_IMAGES, PROBS
from ..registry import SELECTORS
from .base import Selector, matvec

GRAD, INPUT = 'badge_grad', 'badge_input'


def gradient_embedding(probs: Tensor, last_layer_input: Tensor) -> tuple:
    """The factors ``(g, h)`` of each row's gradient embedding ``g ⊗ h``.

    Args:
        probs: ``[M, K]`` predicted class distributions.
        last_layer_input: ``[M, D]`` input of the layer producing the logits.

    Returns:
        ``([M, K] g = p - onehot(argmax p), [M, D] h)``.
    """
    g = probs.clone()
    g.scatter_add_(1, probs.argmax(1, keepdim=True), -torch.ones_like(probs[:, :1]))
    return g, last_layer_input


def kmeans_pp_factored(g: Tensor, h: Tensor, budget: int, candidates: Tensor,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """BADGE's k-means++ seeding over ``candidates`` rows of the embeddings ``g_i ⊗ h_i``.

    The first pick is the candidate with the largest embedding norm (as in the BADGE code), each
    next one is drawn with probability proportional to its squared distance to the nearest pick
    so far. Once every remaining candidate sits on a pick (all distances 0) the rest are drawn
    uniformly.

    Args:
        g: ``[R, K]`` logit gradients.
        h: ``[R, D]`` last-layer inputs.
        budget: How many to pick (at most ``len(candidates)``).
        candidates: int64 rows eligible for picking.
        generator: Seeded CPU generator.

    Returns:
        ``[budget]`` int64 rows in pick order, none twice.
    """
    g, h = g[candidates].float(), h[candidates].float()
    sq_norm = (g * g).sum(1).double() * (h * h).sum(1).double()  # |g ⊗ h|², combined in float64
    picks = torch.empty(budget, dtype=torch.long)
    if budget == 0:
        return picks
    picks[0] = int(sq_norm.argmax())
    min_dist = torch.full_like(sq_norm, torch.inf)
    for i in range(1, budget):
        c = picks[i - 1]
        dist = (sq_norm + sq_norm[c] - 2 * (g @ g[c]).double() * matvec(h, h[c]).double()).clamp_min_(0)
        torch.minimum(min_dist, dist, out=min_dist)
        min_dist[picks[:i]] = 0
        weights = min_dist.cpu()
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
            weights[picks[:i]] = 0
        picks[i] = int(torch.multinomial(weights, 1, generator=generator))
    return candidates[picks.to(candidates.device)]


@SELECTORS.register_module()
class BADGE(Selector):
    """Diverse and uncertain batches: k-means++ seeding on gradient embeddings (no scorer).

    Needs the adapter outputs ``probs`` and ``last_layer_input``: the classifier's penultimate
    features for image classifiers; for detectors the input of the per-box classifier at each
    kept box (the centre tap of a convolutional classifier, a two-stage head's last shared FC, a
    DETR decoder query), pooled per image by the box of largest gradient norm.

    Args:
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """
    requires = frozenset({PROBS, LAST_LAYER_INPUT})
    uses_scores = False

    def image_inputs(self, outputs: Mapping) -> Dict[str, Tensor]:
        g, h = gradient_embedding(outputs[PROBS].float(), outputs[LAST_LAYER_INPUT].float())
        index = outputs.get(IMAGE_INDEX)
        if index is None:
            return {GRAD: g, INPUT: h}
        num = int(outputs[NUM_IMAGES])
        norm = (g * g).sum(1) * (h * h).sum(1)
        best = torch.full((num, ), -1.0, dtype=norm.dtype, device=norm.device)
        best.scatter_reduce_(0, index, norm, reduce='amax')
        # The first row of each image that attains its maximum norm.
        is_best = norm == best[index]
        rows = torch.full((num, ), len(norm), dtype=torch.long, device=norm.device)
        rows.scatter_reduce_(0, index[is_best], is_best.nonzero().squeeze(1), reduce='amin')
        has_box = rows < len(norm)
        out_g = g.new_zeros((num, g.shape[1]))
        out_h = h.new_zeros((num, h.shape[1]))
        out_g[has_box], out_h[has_box] = g[rows[has_box]], h[rows[has_box]]
        return {GRAD: out_g, INPUT: out_h}

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        candidates = (~labeled).nonzero().squeeze(1)
        budget = min(budget, candidates.numel())
        return kmeans_pp_factored(inputs[GRAD], inputs[INPUT], budget, candidates, self.generator)
