"""Acquisition math on probability tensors. Pure torch, CPU or CUDA, no mmdet.

Conventions: class probabilities are on the last dimension; Monte-Carlo samples are on the first
(``[T, ..., C]``); every function returns one value per distribution, higher meaning "more worth
labeling". Natural logarithms throughout.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: Floor applied to probabilities inside logarithms by :func:`symmetric_kl`.
KL_EPS = 1e-8

AGGREGATION_MODES = ('max', 'mean', 'sum', 'topk_mean')


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy ``-Σ_c p_c log p_c`` over the last dimension, with ``0 · log 0 = 0``.

    Args:
        probs: ``[..., C]`` probabilities.

    Returns:
        ``[...]`` entropies in ``[0, log C]``.
    """
    return (-torch.special.xlogy(probs, probs).sum(-1)).clamp_min(0)


def variation_ratio(probs: Tensor) -> Tensor:
    """``1 - max_c p_c`` (the study's eq. 2).

    Args:
        probs: ``[..., C]`` probabilities.

    Returns:
        ``[...]`` values in ``[0, 1 - 1/C]``.
    """
    return 1 - probs.amax(-1)


def mc_variation_ratio(mc_probs: Tensor) -> Tensor:
    """Gal's variation ratio over Monte-Carlo samples: ``1 - f_mode / T``.

    ``f_mode`` is how many of the ``T`` passes voted for the modal (most frequent) argmax class.

    Args:
        mc_probs: ``[T, ..., C]`` probabilities of ``T`` stochastic passes.

    Returns:
        ``[...]`` values in ``[0, 1 - 1/T]``.
    """
    num_samples, num_classes = mc_probs.shape[0], mc_probs.shape[-1]
    votes = mc_probs.argmax(-1)  # [T, ...]
    counts = torch.zeros(votes.shape[1:] + (num_classes, ), dtype=torch.int64, device=votes.device)
    counts.scatter_add_(-1, votes.movedim(0, -1), torch.ones_like(votes.movedim(0, -1)))
    return 1 - counts.amax(-1).to(mc_probs.dtype) / num_samples


def margin(probs: Tensor) -> Tensor:
    """``1 - (p_top1 - p_top2)``: one minus the margin between the two likeliest classes.

    Args:
        probs: ``[..., C]`` probabilities, ``C >= 2``.

    Returns:
        ``[...]`` values in ``[0, 1]``.
    """
    if probs.shape[-1] < 2:
        raise ValueError(f'margin needs at least 2 classes, got probabilities of shape {tuple(probs.shape)}.')
    # The runner-up is the maximum once the winner's entry is masked: two reductions instead of
    # topk(2), which is slow on the CPU for short last dimensions. A tie for first gives margin 0.
    top1, winner = probs.max(-1, keepdim=True)
    runner_up = probs.scatter(-1, winner, -torch.inf).amax(-1)
    return 1 - (top1.squeeze(-1) - runner_up)


def bald(mc_probs: Tensor) -> Tensor:
    """BALD mutual information ``H(mean_t p_t) - mean_t H(p_t)`` over Monte-Carlo samples.

    Non-negative by Jensen's inequality; rounding below zero is clamped to 0.

    Args:
        mc_probs: ``[T, ..., C]`` probabilities of ``T`` stochastic passes.

    Returns:
        ``[...]`` values in ``[0, log C]``.
    """
    return (entropy(mc_probs.mean(0)) - entropy(mc_probs).mean(0)).clamp_min(0)


def augmentation_variance(aug_probs: Tensor) -> Tensor:
    """Inconsistency over augmentations (Gao et al., ECCV 2020): the variance of each class's
    probability over the ``K`` augmented views, summed over the classes.

    Args:
        aug_probs: ``[K, M, C]`` probabilities of ``K`` augmentations of ``M`` items.

    Returns:
        ``[M]`` non-negative values; 0 when every view gets the same prediction.
    """
    return aug_probs.var(dim=0, unbiased=False).sum(-1)


def symmetric_kl_log(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Symmetric KL divergence ``½ Σ_c (p_c - q_c)(log p_c - log q_c)`` from exact log-probabilities.

    No clamping: a confident logit keeps its true log-probability (a class at ``log p = -40``
    contributes what it should, where a probability floored at 1e-8 would be off by up to ~21
    nats). Classes with ``log p = log q = -inf`` contribute 0. Exactly symmetric, 0 where equal.

    Args:
        log_p: ``[..., C]`` log-probabilities.
        log_q: ``[..., C]`` log-probabilities, broadcastable with ``log_p``.

    Returns:
        ``[...]`` non-negative divergences.
    """
    both_zero = torch.isneginf(log_p) & torch.isneginf(log_q)
    log_ratio = torch.where(both_zero, torch.zeros_like(log_p), log_p - log_q)
    return (0.5 * (log_p.exp() - log_q.exp()) * log_ratio).sum(-1).clamp_min(0)


def log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near both ends (Mächler's two branches)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def symmetric_kl(p: Tensor, q: Tensor, eps: float = KL_EPS) -> Tensor:
    """Symmetric KL divergence ``½[KL(p‖q) + KL(q‖p)] = ½ Σ_c (p_c - q_c)(log p_c - log q_c)``.

    Inside the logarithms both distributions are clamped to at least ``eps`` (1e-8), so a class
    with zero probability on one side and ``a > 0`` on the other adds the finite
    ``½ a log(a / eps)`` (at most about 9.2) instead of infinity. The result is exactly symmetric
    in ``p`` and ``q`` and exactly 0 where ``p == q``. Where log-probabilities are at hand, use
    :func:`symmetric_kl_log`, which is exact (the acquisition scorer does).

    Args:
        p: ``[..., C]`` probabilities.
        q: ``[..., C]`` probabilities, broadcastable with ``p``.
        eps: Floor inside the logarithms.

    Returns:
        ``[...]`` non-negative divergences.
    """
    log_ratio = p.clamp_min(eps).log() - q.clamp_min(eps).log()
    return 0.5 * ((p - q) * log_ratio).sum(-1)


def aggregate(values: Tensor,
              image_index: Tensor,
              num_images: int,
              mode: str = 'max',
              k: int = 3,
              empty: float = 0.0) -> Tensor:
    """Reduce per-box values to one score per image.

    Args:
        values: ``[M]`` per-box values.
        image_index: ``[M]`` integer image of each box, in ``[0, num_images)``.
        num_images: Number of images ``N``.
        mode: ``'max'``, ``'mean'``, ``'sum'`` or ``'topk_mean'`` (mean of the ``k`` largest values
            of the image, or of all of them when it has fewer than ``k`` boxes).
        k: Boxes per image for ``'topk_mean'``.
        empty: Score of an image with no box.

    Returns:
        ``[N]`` image scores, in the dtype of ``values``. Non-finite box values propagate.
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(f'unknown aggregation {mode!r}; choose one of {AGGREGATION_MODES}.')
    if values.shape != image_index.shape or values.dim() != 1:
        raise ValueError(f'values {tuple(values.shape)} and image_index {tuple(image_index.shape)} '
                         'must be 1-D and of the same length.')
    if mode == 'topk_mean' and k < 1:
        raise ValueError(f'topk_mean needs k >= 1, got k={k}.')
    image_index = image_index.long()
    counts = torch.zeros(num_images, dtype=values.dtype, device=values.device)
    counts.index_add_(0, image_index, torch.ones_like(values))
    if mode == 'topk_mean':
        # Sort by value (descending), then stably by image: each image's boxes become a run in
        # descending order, and a box's rank is its position minus the start of its run.
        by_value = values.argsort(descending=True, stable=True)
        order = by_value[image_index[by_value].argsort(stable=True)]
        sorted_images = image_index[order]
        run_start = torch.cumsum(counts, 0).long() - counts.long()
        rank = torch.arange(len(values), device=values.device) - run_start[sorted_images]
        keep = order[rank < k]
        out = torch.zeros(num_images, dtype=values.dtype, device=values.device)
        out.index_add_(0, image_index[keep], values[keep])
        out = out / counts.clamp(max=k).clamp_min(1)
    elif mode == 'max':
        out = torch.full((num_images, ), -torch.inf, dtype=values.dtype, device=values.device)
        out.scatter_reduce_(0, image_index, values, reduce='amax', include_self=True)
    else:
        out = torch.zeros(num_images, dtype=values.dtype, device=values.device)
        out.index_add_(0, image_index, values)
        if mode == 'mean':
            out = out / counts.clamp_min(1)
    return torch.where(counts > 0, out, torch.full_like(out, empty))


def weighted_mean(values: Tensor, weights: Tensor, image_index: Tensor, num_images: int,
                  empty: float = 0.0) -> Tensor:
    """Per image, the mean of its boxes' ``values`` weighted by ``weights``.

    Args:
        values: ``[M]`` per-box values.
        weights: ``[M]`` non-negative weights (e.g. detection scores).
        image_index: ``[M]`` image of each box, in ``[0, num_images)``.
        num_images: ``N``.
        empty: Score of an image without a box, or whose weights sum to 0.

    Returns:
        ``[N]``.
    """
    image_index = image_index.long()
    total = torch.zeros(num_images, dtype=values.dtype, device=values.device)
    total.index_add_(0, image_index, values * weights)
    mass = torch.zeros_like(total)
    mass.index_add_(0, image_index, weights.to(values.dtype))
    return torch.where(mass > 0, total / mass.clamp_min(torch.finfo(values.dtype).tiny), torch.full_like(total, empty))


def binary_entropy(p: Tensor) -> Tensor:
    """``-p log p - (1 - p) log (1 - p)`` of each probability (0 at 0 and 1)."""
    p = p.clamp(0, 1)
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


def difficulty_weights(quality: Tensor, alpha: float = 0.3, upper_bound: float = 0.2) -> Tensor:
    """PPAL's class weights from per-class detection quality ``q`` (Yang et al., CVPR 2024):
    ``1 + alpha * upper_bound * log(b (1 - q) + 1)`` with ``b = exp(1 / alpha) - 1``, which runs
    from 1 (a class detected perfectly, ``q = 1``) to ``1 + upper_bound`` (never detected, ``q = 0``);
    a smaller ``alpha`` raises the weight of moderately hard classes more steeply.

    Args:
        quality: ``[C]`` qualities in ``[0, 1]``.
        alpha: Curvature (PPAL's ``class_weight_alpha``, 0.3 in its VOC and COCO configs).
        upper_bound: Largest extra weight (PPAL's ``class_weight_ub``, 0.2).

    Returns:
        ``[C]`` weights.
    """
    if alpha <= 0:
        raise ValueError(f'alpha must be > 0, got {alpha}.')
    b = torch.expm1(torch.tensor(1.0 / alpha, dtype=torch.float64)).item()
    return 1 + alpha * upper_bound * torch.log1p(b * (1 - quality.clamp(0, 1)))


def localization_tightness(proposal_iou: Tensor, scores: Tensor) -> Tensor:
    """Kao et al.'s (ACCV 2018) tightness uncertainty of each box: ``1 - |T + P - 1|`` where ``T`` is
    the IoU of its proposal with its refined box and ``P`` its score. A box whose localization and
    classification disagree (a tight box scored low, a loose box scored high) has ``|T + P - 1|``
    near 1 and is certain; ``T + P = 1`` is the most uncertain. The image score (aggregation
    ``'max'``) is then ``1 - min |T + P - 1|``, the paper's image-level choice."""
    return 1 - (proposal_iou + scores - 1).abs()
