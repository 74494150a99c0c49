"""The acquisition method: which scorer and which selector, decided in one place.

:func:`build_method` is the only place where a run's scorer and selection configs get their
defaults, where older spellings are translated, and where the two are checked against each other.
The AL driver (``active_learning`` section), :class:`~mmal.engine.ActiveLearningHook` and
``tools/al_select.py`` all call it, so the same config means the same method everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Union

from ..errors import UserError
from ..outputs import CLASS_QUALITY
from ..registry import SCORERS, SELECTORS
from ..scoring.scorers import Scorer
from ..selection.base import Selector

#: The scorer of a run that names none but whose selection ranks scores.
DEFAULT_SCORER: Dict[str, Any] = dict(type='Random')

#: The selection of a run that names none.
DEFAULT_SELECTION: Dict[str, Any] = dict(type='TopK')

#: Older ``selection`` strings and the selector each one names.
SELECTION_ALIASES = {'topk': 'TopK', 'random_subset_topk': 'RandomSubsetTopK', 'coreset': 'KCenterGreedy'}

SelectionSpec = Union[str, Dict[str, Any], None]


@dataclass(frozen=True)
class AcquisitionMethod:
    """A built scorer and selector that work together.

    Attributes:
        scorer_cfg: The scorer's config after defaults, or None when the selector ranks no score.
        selection_cfg: The selector's config after defaults and aliases.
        scorer: The built scorer (None with ``scorer_cfg``).
        selector: The built selector.
        seed: The seed both were built with.
    """

    scorer_cfg: Optional[Dict[str, Any]]
    selection_cfg: Dict[str, Any]
    scorer: Optional[Scorer]
    selector: Selector
    seed: int

    @property
    def requires(self) -> FrozenSet[str]:
        """The model outputs (:mod:`mmal.outputs`) the scorer and the selector read."""
        scored = self.scorer.requires if self.scorer is not None else frozenset()
        return frozenset(scored) | self.selector.requires

    @property
    def training_hooks(self) -> List[Dict[str, Any]]:
        """The hooks the model must train with for this method (PPAL's scorer reads the per-class
        quality that ``ClassQualityHook`` records while training)."""
        return [dict(type='ClassQualityHook')] if CLASS_QUALITY in self.requires else []

    @property
    def name(self) -> str:
        """``'Scorer + Selector'``, or the selector alone, for messages and records."""
        selector = type(self.selector).__name__
        return selector if self.scorer is None else f'{type(self.scorer).__name__} + {selector}'

    def reseeded(self, seed: int) -> 'AcquisitionMethod':
        """The same method built anew with ``seed`` (each cycle of a run has its own)."""
        return build_method(self.scorer_cfg, self.selection_cfg, seed=seed)


def method_from_flags(section: Optional[Dict[str, Any]], scorer: Optional[str] = None,
                      selection: Optional[str] = None, seed: int = 0) -> AcquisitionMethod:
    """The method of a command-line tool: the one ``--scorer`` / ``--selection`` name when either is
    given (a flag left out takes :func:`build_method`'s default), else the config's
    ``active_learning`` section's (``section``).

    Raises:
        UserError: As :func:`build_method`.
    """
    if scorer or selection:
        return build_method(dict(type=scorer) if scorer else None, dict(type=selection) if selection else None,
                            seed=seed, where='--')
    section = section or {}
    return build_method(section.get('scorer'), section.get('selection'), subset_size=section.get('subset_size'),
                        seed=seed, where='active_learning.')


def _selection_cfg(selection: SelectionSpec, subset_size: Optional[int], where: str) -> Dict[str, Any]:
    """``selection`` as a selector config: default, older strings and ``subset_size`` folded in."""
    if subset_size is not None:
        if selection != 'random_subset_topk':
            raise UserError(f"{where}subset_size only goes with selection='random_subset_topk'; with a selector dict "
                            'put it inside: selection=dict(type=..., subset_size=...).')
        if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 1:
            raise UserError(f'{where}subset_size must be an integer >= 1, got {subset_size!r}.')
        return dict(type='RandomSubsetTopK', subset_size=subset_size)
    if selection is None:
        return dict(DEFAULT_SELECTION)
    if isinstance(selection, str):
        if selection not in SELECTION_ALIASES:
            raise UserError(f'{where}selection {selection!r} is unknown; name a selector with selection=dict(type=...) '
                            f'(registered: {", ".join(sorted(SELECTORS.module_dict))}).')
        return dict(type=SELECTION_ALIASES[selection])
    if not isinstance(selection, dict):
        raise UserError(f"{where}selection must be a dict such as dict(type='TopK'), got {selection!r}.")
    if 'type' not in selection:
        raise UserError(f"{where}selection needs a type, e.g. dict(type='TopK'), got {selection!r}.")
    return dict(selection)


def _build(registry, cfg: Dict[str, Any], seed: int, what: str):
    """Build ``cfg`` from ``registry`` with ``seed``, one sentence on a bad config."""
    name = cfg.get('type')
    if name not in registry.module_dict:
        raise UserError(f'unknown {what} {name!r}; registered: {", ".join(sorted(registry.module_dict))}.')
    try:
        return registry.build(cfg, default_args=dict(seed=seed))
    except (TypeError, ValueError) as err:
        raise UserError(f'{what} {cfg}: {err}') from None


def build_method(scorer: Optional[Dict[str, Any]] = None, selection: SelectionSpec = None, *,
                 subset_size: Optional[int] = None, seed: int = 0, where: str = '') -> AcquisitionMethod:
    """The acquisition method a config names, with its defaults, checked to work together.

    Defaults: no selection means ``TopK``; a selection that ranks scores (``TopK``,
    ``RandomSubsetTopK``, ``PowerSampling``) with no scorer ranks ``Random`` scores; a selection
    that ranks none (``KCenterGreedy``, ``BADGE``, ...) takes no scorer.

    Args:
        scorer: Scorer config (``mmal.registry.SCORERS``), or None.
        selection: Selector config (``mmal.registry.SELECTORS``), one of the older strings
            (``'topk'``, ``'random_subset_topk'``, ``'coreset'``), or None.
        subset_size: Older configs' subset size, only with ``selection='random_subset_topk'``.
        seed: Seed of both (a run passes each cycle's seed).
        where: Prefix of the key names in messages (``'active_learning.'`` for the driver's section).

    Returns:
        The built :class:`AcquisitionMethod`.

    Raises:
        UserError: An unknown name, a bad keyword, or a scorer and selector that do not fit.
    """
    if scorer is not None and not (isinstance(scorer, dict) and 'type' in scorer):
        raise UserError(f"{where}scorer must be a dict with a type, e.g. scorer=dict(type='Entropy'), got {scorer!r}.")
    if scorer is not None and scorer['type'] == 'CoreSet':
        raise UserError("CoreSet is a selection, not a scorer: use selection=dict(type='KCenterGreedy') and no "
                        'scorer.')
    selection_cfg = _selection_cfg(selection, subset_size, where)
    selector: Selector = _build(SELECTORS, selection_cfg, seed, 'selection')
    name = type(selector).__name__
    if scorer is None and selector.uses_scores:
        scorer = dict(DEFAULT_SCORER)
    if scorer is not None and not selector.uses_scores:
        raise UserError(f'selection {name} ranks no score, so the scorer {scorer["type"]} would be ignored; drop the '
                        'scorer or use a score-based selection (TopK, RandomSubsetTopK, PowerSampling).')
    built: Optional[Scorer] = _build(SCORERS, dict(scorer), seed, 'scorer') if scorer is not None else None
    return AcquisitionMethod(scorer_cfg=None if scorer is None else dict(scorer), selection_cfg=selection_cfg,
                             scorer=built, selector=selector, seed=seed)
