"""The declared schema of every JSON record mmal writes and reads back (pure Python).

=====================  ===========================================================================
record                 file
=====================  ===========================================================================
:class:`RunConfig`     ``al_config.json``: the config a run was started with (for resume checks)
:class:`LabeledSet`    ``trial_<t>/cycle_<k>/labeled.json``: the labeled set a cycle trains on
:class:`CycleMetrics`  ``trial_<t>/cycle_<k>/metrics.json``: the test metrics of its model
:class:`Selection`     ``trial_<t>/cycle_<k>/selected.json`` (driver), ``acquisition.json``
                       (``ActiveLearningHook``) and ``tools/al_select.py --out x.json``: one
                       acquisition's picks, in one format wherever it is written
=====================  ===========================================================================

``to_json()`` gives the dict to write; ``from_json(obj, path)`` checks a parsed file field by field
and raises :class:`~mmal.errors.UserError` naming the file and the field, so a damaged or
hand-edited state file is one sentence, never a traceback or a silently wrong run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Union

from .errors import UserError


def _field(obj: Any, path: str, key: str, kind: Any, what: str) -> Any:
    """``obj[key]`` checked to be a ``kind``; one sentence naming the file and the field otherwise."""
    if not isinstance(obj, dict):
        raise UserError(f'{path} is not a JSON object; restore it, or delete it and run again with --resume.')
    value = obj.get(key)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise UserError(f'{path}: field {key!r} must be {what}, got {value!r}; restore the file, or delete it and run '
                        'again with --resume.')
    return value


def _image_id(value: Any) -> Union[int, str]:
    """An image id as the pool gives it: a COCO integer stays an integer, anything else is a string."""
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _indices(obj: Any, path: str, key: str) -> List[int]:
    values = _field(obj, path, key, list, 'a list of pool indices')
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise UserError(f'{path}: field {key!r} must list non-negative integers; restore the file, or delete it and '
                        'run again with --resume.')
    return values


@dataclass
class RunConfig:
    """``al_config.json``: the config a run was started with.

    Attributes:
        fingerprint: Hash of every key that decides the experiment.
        config: The config's file name.
        flat_config: ``{'a.b.c': JSON text}`` of those keys (resume names the ones that differ).
        metric: The metric of the report, or None for the evaluator's first.
        scorer: The method's name (scorer, or selection without one), for readers of the run.
    """

    fingerprint: str
    config: str
    flat_config: Dict[str, str]
    metric: Optional[str] = None
    scorer: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return dict(fingerprint=self.fingerprint, config=self.config, metric=self.metric, scorer=self.scorer,
                    flat_config=self.flat_config)

    @classmethod
    def from_json(cls, obj: Any, path: str) -> 'RunConfig':
        flat = _field(obj, path, 'flat_config', dict, 'an object of config keys')
        metric, scorer = obj.get('metric'), obj.get('scorer')
        return cls(fingerprint=_field(obj, path, 'fingerprint', str, 'a string'),
                   config=_field(obj, path, 'config', str, 'a file name'),
                   flat_config={str(k): str(v) for k, v in flat.items()},
                   metric=metric if isinstance(metric, str) else None,
                   scorer=scorer if isinstance(scorer, str) else None)


@dataclass
class LabeledSet:
    """``labeled.json``: the pool indices a cycle trains on.

    Attributes:
        trial: Trial number.
        cycle: Cycle number.
        seed: The cycle's seed (training, scorer, selector).
        indices: Sorted pool indices.
        image_ids: The image id of each index.
    """

    trial: int
    cycle: int
    seed: int
    indices: List[int]
    image_ids: List[str]

    @property
    def num_labeled(self) -> int:
        return len(self.indices)

    def to_json(self) -> Dict[str, Any]:
        return dict(trial=self.trial, cycle=self.cycle, num_labeled=self.num_labeled, seed=self.seed,
                    indices=self.indices, image_ids=self.image_ids)

    @classmethod
    def from_json(cls, obj: Any, path: str, pool_size: Optional[int] = None) -> 'LabeledSet':
        """Check a parsed ``labeled.json`` (indices below ``pool_size`` when given)."""
        indices = _indices(obj, path, 'indices')
        if pool_size is not None and any(i >= pool_size for i in indices):
            raise UserError(f'{path}: field \'indices\' holds {max(indices)}, but the pool has {pool_size} images; '
                            'the work dir belongs to another pool: start a new --work-dir.')
        return cls(trial=_field(obj, path, 'trial', int, 'an integer'), cycle=_field(obj, path, 'cycle', int,
                   'an integer'), seed=_field(obj, path, 'seed', int, 'an integer'), indices=indices,
                   image_ids=[str(i) for i in _field(obj, path, 'image_ids', list, 'a list of image ids')])


@dataclass
class CycleMetrics:
    """``metrics.json``: the test metrics of one cycle's model.

    Attributes:
        trial: Trial number.
        cycle: Cycle number.
        num_labeled: Labeled images the model was trained on.
        metrics: ``{metric name: value}``.
        num_boxes: Labeled boxes, where the pool counts them (detection), else None.
    """

    trial: int
    cycle: int
    num_labeled: int
    metrics: Dict[str, float]
    num_boxes: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        out = asdict(self)
        if self.num_boxes is None:
            out.pop('num_boxes')
        return out

    @classmethod
    def from_json(cls, obj: Any, path: str) -> 'CycleMetrics':
        metrics = _field(obj, path, 'metrics', dict, 'an object of metric values')
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
            raise UserError(f'{path}: field \'metrics\' must map names to numbers; restore the file, or delete it and '
                            'run again with --resume.')
        boxes = obj.get('num_boxes')
        return cls(trial=_field(obj, path, 'trial', int, 'an integer'), cycle=_field(obj, path, 'cycle', int,
                   'an integer'), num_labeled=_field(obj, path, 'num_labeled', int, 'an integer'),
                   metrics={str(k): float(v) for k, v in metrics.items()},
                   num_boxes=boxes if isinstance(boxes, int) else None)


@dataclass
class Pick:
    """One selected image: its index in the scored pool, id, path and score (None without a scorer)."""

    index: int
    img_id: Union[int, str]
    img_path: str
    score: Optional[float] = None


@dataclass
class UnreadableImage:
    """A pool image that was skipped because it could not be read."""

    index: int
    img_id: Union[int, str]
    img_path: str
    error: str


@dataclass
class Selection:
    """One acquisition: what was picked, how, and what could not be read.

    Attributes:
        scorer: The scorer's config, or None when the selector ranks no score.
        selection: The selector's config.
        budget: How many images were asked for.
        num_candidates: How many unlabeled images were candidates.
        selected: The picks, in pick order.
        unreadable: The candidates skipped because their files could not be read.
        acted_by: The selector that picked (for a composed selector such as ``RegimeSwitch``, the
            component that acted).
        context: Where it was made: ``trial``/``cycle`` (driver), ``pool``/``pool_size``/...
            (hook, al_select); written as top-level keys.
    """

    scorer: Optional[Dict[str, Any]]
    selection: Dict[str, Any]
    budget: int
    num_candidates: int
    selected: List[Pick] = field(default_factory=list)
    unreadable: List[UnreadableImage] = field(default_factory=list)
    context: Dict[str, Any] = field(default_factory=dict)
    acted_by: str = ''

    @property
    def indices(self) -> List[int]:
        """Pool indices of the picks, in pick order."""
        return [p.index for p in self.selected]

    def to_json(self) -> Dict[str, Any]:
        def clean(score: Optional[float]) -> Optional[float]:
            return None if score is None or not math.isfinite(score) else score

        return dict(**self.context, scorer=self.scorer, selection=self.selection, acted_by=self.acted_by,
                    budget=self.budget, num_candidates=self.num_candidates,
                    selected=[dict(asdict(p), score=clean(p.score)) for p in self.selected],
                    unreadable=[asdict(u) for u in self.unreadable])

    @classmethod
    def from_json(cls, obj: Any, path: str, pool_size: Optional[int] = None) -> 'Selection':
        """Check a parsed selection record (pick indices below ``pool_size`` when given)."""
        picks = _field(obj, path, 'selected', list, 'a list of picks')
        if not all(isinstance(p, dict) and isinstance(p.get('index'), int) and p['index'] >= 0 for p in picks):
            raise UserError(f'{path}: every entry of \'selected\' must be an object with a non-negative \'index\'; '
                            'restore the file, or delete it and run again with --resume.')
        if pool_size is not None and any(p['index'] >= pool_size for p in picks):
            raise UserError(f'{path}: field \'selected\' picks index {max(p["index"] for p in picks)}, but the pool '
                            f'has {pool_size} images; the work dir belongs to another pool: start a new --work-dir.')
        unreadable = _field(obj, path, 'unreadable', list, 'a list')
        known = {'scorer', 'selection', 'acted_by', 'budget', 'num_candidates', 'selected', 'unreadable'}
        return cls(scorer=obj.get('scorer'), selection=_field(obj, path, 'selection', dict, 'a selector config'),
                   budget=_field(obj, path, 'budget', int, 'an integer'),
                   num_candidates=_field(obj, path, 'num_candidates', int, 'an integer'),
                   selected=[Pick(index=p['index'], img_id=_image_id(p.get('img_id', p['index'])),
                                  img_path=str(p.get('img_path', '')), score=p.get('score')) for p in picks],
                   unreadable=[UnreadableImage(index=int(u.get('index', -1)), img_id=_image_id(u.get('img_id', '')),
                                               img_path=str(u.get('img_path', '')), error=str(u.get('error', '')))
                               for u in unreadable if isinstance(u, dict)],
                   context={k: v for k, v in obj.items() if k not in known},
                   acted_by=str(obj.get('acted_by') or obj['selection'].get('type', '')))
