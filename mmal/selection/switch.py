"""A selection that knows its budget regime: typicality or coverage while the labeled set is small,
uncertainty once the model is worth asking (the TCM rule of Doucet et al., 2024). Pure torch.

Uncertainty needs a model that has seen enough labels; with few labels, typicality (TypiClust) or
coverage (ProbCover) picks better images (Hacohen et al., 2022). :class:`RegimeSwitch` runs one
selector below the switch point and another from it on. The switch point is one of:

- ``switch_labeled``: a labeled count;
- ``switch_per_class`` (with ``num_classes``): labeled images per class, on average;
- ``switch_fraction``: a fraction of the pool;
- ``switch_coverage``: a criterion that needs no held-out labels: the fraction of the pool that lies
  within the ProbCover radius δ of a labeled image (δ given, or estimated by ProbCover's purity
  rule). Once the labeled set covers that much of the pool, typicality has little left to add.
  Measured on label-free features (``active_learning.features``, :mod:`mmal.engine.features`) it
  does not depend on the model trained on the few labels there are.

With none given, the default rule is a count per class: switch once ``DEFAULT_PER_CLASS`` images
per class are labeled (``num_classes`` needed). Hacohen et al. (2022) and Doucet et al. (2024, TCM)
both find the crossover from typicality to uncertainty on CIFAR-10 at a budget of tens of images per
class, earlier the better the representation; 20 per class is this toolkit's choice inside that
range (not tuned on the tables in docs/acquisition.md).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import torch
from torch import Tensor

from ..outputs import FEATURES
from ..registry import SELECTORS
from .base import Selector
from .probcover import estimate_delta

CRITERIA = ('switch_labeled', 'switch_per_class', 'switch_fraction', 'switch_coverage')

#: Labeled images per class at which the default rule switches.
DEFAULT_PER_CLASS = 20


def coverage(x: Tensor, labeled: Tensor, delta: float) -> float:
    """The fraction of rows within ``delta`` of a labeled row (the labeled rows included).

    Args:
        x: ``[R, D]`` features (L2-normalised, as ProbCover uses them).
        labeled: ``[R]`` bool.
        delta: Ball radius.
    """
    if not bool(labeled.any()):
        return 0.0
    covered = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    centres = x[labeled]
    sq = (x * x).sum(1)
    for start in range(0, centres.shape[0], 1024):
        c = centres[start:start + 1024]
        d = torch.addmm(sq[:, None], x, c.T, alpha=-2) + (c * c).sum(1)[None, :]
        covered |= (d < delta * delta).any(1)
    covered |= labeled
    return float(covered.float().mean())


@SELECTORS.register_module()
class RegimeSwitch(Selector):
    """``low`` below the switch point, ``high`` from it on (see the module docstring).

    It reads what both components read (so one scoring pass serves either) and the labeled images'
    rows (their count, or their coverage, decides the regime). Which one acted is
    :meth:`acted_by`, recorded in each acquisition's ``selected.json``.

    Args:
        low: Selector config of the low-budget regime (default ``TypiClust``).
        high: Selector config from the switch on (default ``TopK``, which ranks the run's scorer,
            e.g. ``Margin`` as in TCM).
        switch_labeled: Switch once at least this many images are labeled. With no switch point at
            all: ``switch_per_class=DEFAULT_PER_CLASS`` (the default rule, see the module docstring).
        switch_per_class: Switch once at least this many images per class are labeled
            (``num_classes`` times it).
        num_classes: Classes, for ``switch_per_class``.
        switch_fraction: Switch once at least this fraction of the pool is labeled (not with
            ``subset_size``: the fraction needs the whole pool).
        switch_coverage: Switch once the labeled images cover at least this fraction of the pool
            at radius ``delta``.
        delta: The radius of ``switch_coverage`` on L2-normalised features; None estimates it by
            ProbCover's purity rule (``purity``, ``num_classes`` clusters, default 10).
        purity: Purity of the estimated δ.
        **kwargs: ``subset_size`` and ``seed`` of :class:`~mmal.selection.base.Selector`.
    """

    needs_labeled = True

    def __init__(self, low: Optional[Dict[str, Any]] = None, high: Optional[Dict[str, Any]] = None,
                 switch_labeled: Optional[int] = None, switch_per_class: Optional[float] = None,
                 num_classes: Optional[int] = None, switch_fraction: Optional[float] = None,
                 switch_coverage: Optional[float] = None, delta: Optional[float] = None, purity: float = 0.95,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        given = [name for name, value in zip(CRITERIA, (switch_labeled, switch_per_class, switch_fraction,
                                                        switch_coverage)) if value is not None]
        if len(given) > 1:
            raise ValueError(f'RegimeSwitch takes one switch point of {CRITERIA}, got {given}.')
        if not given:  # the default rule
            if not (isinstance(num_classes, int) and num_classes > 0):
                raise ValueError(f'RegimeSwitch without a switch point switches at {DEFAULT_PER_CLASS} labeled images '
                                 'per class and needs num_classes (a positive integer); give num_classes or one of '
                                 f'{CRITERIA}.')
            switch_per_class = DEFAULT_PER_CLASS
        if switch_per_class is not None and not (isinstance(num_classes, int) and num_classes > 0):
            raise ValueError('switch_per_class needs num_classes (a positive integer).')
        if switch_fraction is not None and (self.subset_size is not None or not 0 < switch_fraction < 1):
            raise ValueError('switch_fraction must lie in (0, 1), and it needs the whole pool: drop subset_size.')
        if switch_coverage is not None and not 0 < switch_coverage <= 1:
            raise ValueError(f'switch_coverage must lie in (0, 1], got {switch_coverage!r}.')
        self.low: Selector = self._component(low or dict(type='TypiClust'), 'low')
        self.high: Selector = self._component(high or dict(type='TopK'), 'high')
        self.switch_labeled, self.switch_per_class, self.num_classes = switch_labeled, switch_per_class, num_classes
        self.switch_fraction, self.switch_coverage = switch_fraction, switch_coverage
        self.delta, self.purity = delta, purity
        self.uses_scores = self.low.uses_scores or self.high.uses_scores
        self.requires = self.low.requires | self.high.requires | (
            frozenset({FEATURES}) if switch_coverage is not None else frozenset())
        self._acted: Optional[str] = None
        self.last_coverage: Optional[float] = None

    def _component(self, cfg: Dict[str, Any], which: str) -> Selector:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f'RegimeSwitch {which} must be a selector config such as dict(type=\'TopK\'), '
                             f'got {cfg!r}.')
        if cfg.get('subset_size') is not None:
            raise ValueError(f'RegimeSwitch {which}: set subset_size on RegimeSwitch itself, not on a component.')
        if cfg['type'] == 'RegimeSwitch':
            raise ValueError('RegimeSwitch components cannot be RegimeSwitch themselves.')
        return SELECTORS.build({**cfg, 'seed': self.seed})

    def image_inputs(self, outputs: Mapping) -> Dict[str, Tensor]:
        inputs = {**self.low.image_inputs(outputs), **self.high.image_inputs(outputs)}
        if self.switch_coverage is not None and FEATURES not in inputs:
            inputs[FEATURES] = outputs[FEATURES].flatten(1).float()
        return inputs

    def switched(self, inputs: Mapping[str, Tensor], labeled: Tensor) -> bool:
        """Whether the high-budget regime applies to a round with these rows."""
        count = int(labeled.sum())
        if self.switch_labeled is not None:
            return count >= self.switch_labeled
        if self.switch_per_class is not None:
            assert self.num_classes is not None
            return count >= self.switch_per_class * self.num_classes
        if self.switch_fraction is not None:
            return count >= self.switch_fraction * labeled.numel()
        assert self.switch_coverage is not None
        x = torch.nn.functional.normalize(inputs[FEATURES].float(), dim=1)
        delta = self.delta
        if delta is None:
            delta = estimate_delta(x, self.num_classes or 10, self.purity, 2000, self.generator)
        self.last_coverage = coverage(x, labeled, delta)
        return self.last_coverage >= self.switch_coverage

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        chosen = self.high if self.switched(inputs, labeled) else self.low
        self._acted = type(chosen).__name__
        return chosen.select(budget, scores, inputs, labeled)

    def reset(self) -> None:
        super().reset()
        self.low.reset()
        self.high.reset()

    def report(self) -> Dict[str, float]:
        """The coverage the last round measured (``switch_coverage``), rounded; else nothing."""
        return {} if self.last_coverage is None else {'coverage': round(self.last_coverage, 4)}

    def acted_by(self) -> str:
        return self._acted or type(self).__name__
