"""When to stop labeling: stabilising predictions on a stop set (``active_learning.stop``).

After each cycle's training the model predicts on a fixed *stop set* of pool images drawn once per
trial (labeled or not: no label is read), and its agreement with the previous cycle's model on it
(:mod:`mmal.scoring.agreement`: Cohen's kappa of the classes, or for detection the mAP of its boxes
against the previous model's confident boxes) is recorded as the cycle's ``stop/agreement`` metric
(``results.csv``, the report). The rule fires when the agreement has stayed at or above ``threshold``
for ``window`` cycles in a row (Bloodgood and Vijay-Shanker, 2009, use kappa 0.99 over 3); the log
says so, ``stop.json`` records it, and with ``end_trial`` the trial ends there, before its acquisition.

For classification the same pass records ``stop/confidence``: the mean probability the model gives
its predicted class on the stop set, the *average confidence* (AC) estimate of its accuracy from
unlabeled data (Hendrycks and Gimpel, 2017; the baseline of Guillory et al., 2021, and Garg et al.,
2022). It needs no labels but is only as good as the model's calibration: on toy CIFAR it tracked
the test accuracy (rank correlation about +0.94) but read 4-5 points below it (docs/experiments.md).
For detection no label-free mAP estimate is recorded: the published ones (e.g. box stability, Yang
et al., 2023) map a signal to mAP through a regression fitted on labeled, shifted data sets, which a
labeling loop does not have.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional

import torch

from ..errors import UserError

#: The cycle metric holding the agreement with the previous cycle's model.
AGREEMENT = 'stop/agreement'
#: The cycle metric holding the classifier's average confidence on the stop set (a label-free accuracy estimate).
CONFIDENCE = 'stop/confidence'


@dataclass(frozen=True)
class StopRule:
    """``active_learning.stop``.

    Args:
        threshold: The agreement from which predictions count as stable.
        window: How many cycles in a row the agreement must reach ``threshold``.
        stop_set: How many pool images the models predict on (at most the pool).
        score_thr: Detection: the least score of a previous model's box taken as a label.
        end_trial: End the trial when the rule fires (else only say so).
    """

    threshold: float = 0.99
    window: int = 3
    stop_set: int = 500
    score_thr: float = 0.3
    end_trial: bool = False

    @classmethod
    def from_cfg(cls, cfg: Any) -> Optional['StopRule']:
        """The rule of ``active_learning.stop`` (None: no rule, no signal).

        Raises:
            UserError: An unknown key or a value out of range, in one sentence.
        """
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise UserError(f'active_learning.stop must be a dict, e.g. dict(threshold=0.99, window=3), got {cfg!r}.')
        known = {f.name for f in fields(cls)}
        if set(cfg) - known:
            raise UserError(f'active_learning.stop has unknown keys {sorted(set(cfg) - known)}; known keys: '
                            f'{sorted(known)}.')
        rule = cls(**cfg)
        if not (isinstance(rule.threshold, (int, float)) and 0 < rule.threshold <= 1):
            raise UserError(f'active_learning.stop.threshold must lie in (0, 1], got {rule.threshold!r}.')
        for name in ('window', 'stop_set'):
            value = getattr(rule, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise UserError(f'active_learning.stop.{name} must be an integer >= 1, got {value!r}.')
        if not (isinstance(rule.score_thr, (int, float)) and 0 <= rule.score_thr < 1):
            raise UserError(f'active_learning.stop.score_thr must lie in [0, 1), got {rule.score_thr!r}.')
        if not isinstance(rule.end_trial, bool):
            raise UserError(f'active_learning.stop.end_trial must be True or False, got {rule.end_trial!r}.')
        return rule

    def stop_indices(self, pool_size: int, seed: int) -> List[int]:
        """The trial's stop set: ``stop_set`` pool indices drawn from ``seed`` alone."""
        gen = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(pool_size, generator=gen)[:min(self.stop_set, pool_size)].tolist())

    def fires(self, agreements: List[Optional[float]]) -> bool:
        """Whether the agreements so far (cycle by cycle; None where there is none) end in ``window``
        values at or above ``threshold``."""
        last = agreements[-self.window:]
        return len(last) == self.window and all(a is not None and a >= self.threshold for a in last)


def stop_record(rule: StopRule, agreements: List[Optional[float]], cycle: int) -> Dict[str, Any]:
    """What ``stop.json`` holds when the rule fires at ``cycle``."""
    return dict(cycle=cycle, threshold=rule.threshold, window=rule.window, agreements=agreements,
                end_trial=rule.end_trial)
