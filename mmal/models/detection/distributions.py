"""Per-box class distributions of detection heads, in log space. Pure torch.

Every detector family hands scorers a distribution over ``K = C + 1`` outcomes, the ``C``
classes and background (last):

- softmax heads (SSD, the RoI heads of two-stage detectors, DETR) predict background
  themselves: ``log_softmax`` of their ``C + 1`` logits;
- sigmoid heads (RetinaNet, FCOS, ATSS, GFL, VFNet, PAA, RTMDet, YOLOX, Deformable-DETR, DINO)
  score the classes independently. The box is foreground with probability ``s``, its detection
  score as the head's own ``predict`` computes it (``max_c σ(l_c)``, times centerness or
  objectness where the head has one, square-rooted for PAA); the foreground splits over the
  classes in proportion to their sigmoids: ``q_c = s · σ(l_c) / Σ_c' σ(l_c')``, ``q_bg = 1 - s``.
  A box at score 0.6 thus has 0.4 background, whatever the number of classes.

Entropy, margin and variation ratio read these ``q``; consistency compares them in log space.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as nnf
from torch import Tensor

from ...scoring.functional import log1mexp


def level_logits(maps: Sequence[Tensor], channels: int) -> Tensor:
    """Concatenate per-level head maps ``[B, A_l*K, H, W]`` into ``[B, A, K]`` in mmdet's prior order."""
    batch = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(batch, -1, channels) for m in maps], dim=1)


def softmax_log_probs(logits: Tensor) -> Tensor:
    """``[..., C+1]`` log-probabilities of a softmax head (background last)."""
    return logits.float().log_softmax(-1)


def seesaw_log_probs(logits: Tensor) -> Tensor:
    """Exact log of Seesaw loss's activation (``SeesawLoss.get_activation``) of ``[..., C + 2]``
    logits: the classes' softmax times the objectness softmax's first entry, and background its
    second."""
    classes, objectness = logits.float()[..., :-2], logits.float()[..., -2:].log_softmax(-1)
    return torch.cat([classes.log_softmax(-1) + objectness[..., :1], objectness[..., 1:]], dim=-1)


def sigmoid_log_probs(logits: Tensor, log_factor: Optional[Tensor] = None, power: float = 1.0) -> Tensor:
    """``[..., C+1]`` log-probabilities of a sigmoid head (see the module docstring).

    Args:
        logits: ``[..., C]`` class logits.
        log_factor: ``[...]`` log of the score factor (centerness, objectness), or None.
        power: Exponent of the score (0.5 for PAA's ``sqrt(score · iou)``).

    Returns:
        ``[..., C+1]`` log-probabilities: ``log(s · split_c)`` and ``log(1 - s)``.
    """
    return score_log_probs(nnf.logsigmoid(logits.float()), log_factor, power)


def score_log_probs(log_sig: Tensor, log_factor: Optional[Tensor] = None, power: float = 1.0) -> Tensor:
    """:func:`sigmoid_log_probs` from the log of each class's score in ``[0, 1]`` (for heads whose
    forward already returns scores, as TOOD's task-aligned ``sqrt(σ(l) · σ(p))``)."""
    log_score = log_sig.amax(-1)
    if log_factor is not None:
        log_score = log_score + log_factor.float()
    log_score = power * log_score
    split = log_sig - log_sig.logsumexp(-1, keepdim=True)
    return torch.cat([log_score.unsqueeze(-1) + split, log1mexp(log_score).unsqueeze(-1)], dim=-1)


def class_distribution(logits: Tensor, use_sigmoid: bool) -> Tensor:
    """Per-anchor probabilities ``[..., C+1]`` of a dense head without score factors (CSD's
    consistency loss; see the module docstring)."""
    return (sigmoid_log_probs(logits) if use_sigmoid else softmax_log_probs(logits)).exp()
