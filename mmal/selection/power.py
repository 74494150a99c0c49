"""Stochastic batch acquisition (Kirsch et al., TMLR 2023; baal's stochastic heuristics). Pure torch.

Instead of the top ``budget`` scores, draw ``budget`` images without replacement with
probability proportional to ``score^β`` (``'power'``), ``exp(β·score)`` (``'softmax'``) or
``rank^-β`` (``'softrank'``). The draw is a Gumbel-top-k: add Gumbel noise to the log-weights
and take the top ``budget``, which samples exactly that sequential scheme.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor

from ..registry import SELECTORS
from .base import Selector, ranking_key
from .topk import top_k

MODES = ('power', 'softmax', 'softrank')


def log_weights(scores: Tensor, mode: str, beta: float) -> Tensor:
    """Log of the (unnormalised) sampling weight of each score.

    Args:
        scores: ``[N]`` scores (non-finite ones get weight 0, and so do zero scores with ``'power'``
            and ``beta > 0``).
        mode: ``'power'`` (scores must be >= 0), ``'softmax'`` or ``'softrank'``.
        beta: Temperature: 0 draws uniformly, large values approach top-k.

    Returns:
        ``[N]`` float64 log-weights.
    """
    key = ranking_key(scores).double()
    if mode == 'power':
        if bool((key[torch.isfinite(key)] < 0).any()):
            raise ValueError("PowerSampling mode='power' needs non-negative scores; use mode='softmax'.")
        # score^0 is 1 for every score, zero included: beta=0 draws uniformly (and 0 * log 0 is no NaN)
        out = torch.zeros_like(key) if beta == 0 else beta * torch.log(key.clamp_min(0))
    elif mode == 'softmax':
        out = beta * key
    else:
        rank = torch.empty_like(key)
        rank[key.argsort(descending=True, stable=True)] = torch.arange(1, key.numel() + 1, dtype=key.dtype)
        out = -beta * torch.log(rank)
    return torch.where(torch.isneginf(key), torch.full_like(out, -torch.inf), out)


@SELECTORS.register_module()
class PowerSampling(Selector):
    """Draw ``budget`` images without replacement, with probability growing with their score.

    Images of weight 0 (a zero score under ``'power'``, a non-finite score) are drawn only when the
    others run out, uniformly among themselves.

    Args:
        beta: Temperature (1.0, the paper's default).
        mode: ``'power'`` (``score^β``, the default), ``'softmax'`` (``exp(β·score)``) or
            ``'softrank'`` (``rank^-β``).
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    def __init__(self, beta: float = 1.0, mode: str = 'power', **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
        if beta < 0:
            raise ValueError(f'beta must be >= 0, got {beta}.')
        self.beta, self.mode = beta, mode

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        rows = (~labeled).nonzero().squeeze(1)
        logw = log_weights(self.scores_of(scores)[rows].cpu(), self.mode, self.beta)
        uniform = torch.rand(rows.numel(), dtype=torch.float64, generator=self.generator)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1 - 1e-16)))
        zero = torch.isneginf(logw)
        # the Gumbel-top-k draw among positive weights, then the weight-0 rows in a uniformly random order
        positive, empty = (~zero).nonzero().squeeze(1), zero.nonzero().squeeze(1)
        order = torch.cat([positive[top_k(logw[positive] + gumbel[positive], budget)],
                           empty[top_k(gumbel[empty], budget)]])[:budget]
        return rows[order.to(rows.device)]
