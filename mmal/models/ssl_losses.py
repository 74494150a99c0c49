"""The math of consistency-based semi-supervised learning (pure torch, no mmdet).

- CSD (Jeong et al., NeurIPS 2019): class and location consistency between an image and its
  horizontal flip, on the anchors that background elimination keeps.
- MixMatch (Berthelot et al., NeurIPS 2019): label guessing with sharpening, and mixup.
- The weight schedules of both.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

from ..scoring.functional import symmetric_kl


def background_elimination(probs: Tensor) -> Tensor:
    """Anchors whose highest foreground probability exceeds the background probability.

    Args:
        probs: ``[..., C+1]`` class distributions, background last (mmdet's order).

    Returns:
        ``[...]`` boolean mask.
    """
    return probs[..., :-1].amax(-1) > probs[..., -1]


def csd_consistency(probs: Tensor, flip_probs: Tensor, deltas: Tensor, flip_deltas: Tensor
                    ) -> Tuple[Tensor, Tensor, Tensor]:
    """CSD's consistency losses between an image's anchors and the mirrored anchors of its flip.

    Args:
        probs: ``[B, A, C+1]`` class distributions of the image.
        flip_probs: ``[B, A, C+1]`` those of the flipped image, mirrored back to the same anchors.
        deltas: ``[B, A, 4]`` box regression ``(dx, dy, dw, dh)`` of the image.
        flip_deltas: ``[B, A, 4]`` those of the flipped image, mirrored back.

    Returns:
        ``(class_loss, location_loss, mask)``: the symmetric KL and the squared location difference
        (``dx`` against ``-dx`` of the flip) averaged over the anchors that background
        elimination keeps on the image (0 when none is kept), and that ``[B, A]`` mask.
    """
    mask = background_elimination(probs)
    if not mask.any():
        zero = (probs.sum() + deltas.sum()) * 0
        return zero, zero, mask
    cls = symmetric_kl(probs[mask], flip_probs[mask]).mean()
    mirrored = flip_deltas * flip_deltas.new_tensor([-1.0, 1.0, 1.0, 1.0])
    loc = (deltas[mask] - mirrored[mask]).pow(2).sum(-1).mean()
    return cls, loc, mask


def csd_weight(step: int, ramp_up: int, ramp_down: int, total: int) -> float:
    """CSD's consistency weight: a Gaussian ramp-up over the first ``ramp_up`` steps, 1 until the
    last ``ramp_down`` steps, then a Gaussian ramp-down to ``exp(-12.5)`` at ``total``."""
    if ramp_up > 0 and step < ramp_up:
        return math.exp(-5.0 * (1.0 - step / ramp_up) ** 2)
    if ramp_down > 0 and step > total - ramp_down:
        return math.exp(-12.5 * (1.0 - max(total - step, 0) / ramp_down) ** 2)
    return 1.0


def linear_ramp(step: int, length: int) -> float:
    """MixMatch's unlabeled-loss weight factor: ``step / length``, then 1."""
    return 1.0 if length <= 0 else min(step / length, 1.0)


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """``p^(1/T)`` renormalised over the last axis (MixMatch's sharpening)."""
    p = p.pow(1.0 / temperature)
    return p / p.sum(-1, keepdim=True)


def mixup(x: Tensor, y: Tensor, perm: Tensor, lam: Tensor) -> Tuple[Tensor, Tensor]:
    """MixMatch's mixup: each row mixed with row ``perm[i]`` of the same batch, with per-row
    ``λ' = max(λ, 1 - λ)`` so that the result stays closer to its own row.

    Args:
        x: ``[N, ...]`` inputs.
        y: ``[N, C]`` targets (one-hot labels or guessed distributions).
        perm: ``[N]`` partner of each row.
        lam: ``[N]`` mixing coefficients drawn from Beta(α, α).

    Returns:
        The mixed ``(x, y)``.
    """
    lam = torch.maximum(lam, 1 - lam)
    lx = lam.view(-1, *([1] * (x.dim() - 1)))
    return lx * x + (1 - lx) * x[perm], lam[:, None] * y + (1 - lam[:, None]) * y[perm]
