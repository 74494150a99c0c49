"""The ``active_learning`` section of a config, validated before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Union

from ..datasets.annotations import AnnotationPolicy
from ..engine.acquisition import check_control_fraction, check_gain_estimate
from ..engine.features import FeatureSource, build_features
from ..engine.method import AcquisitionMethod, build_method
from ..errors import UserError
from ..outputs import FEATURES
from ..registry import ANNOTATORS, CYCLE_HOOKS
from .stopping import StopRule

SEMI_SUPERVISED_KEYS = ('labeled_ratio', 'unlabeled_pipeline', 'unlabeled_views')
RETRAIN = ('scratch', 'finetune')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not _is_int(value) or value < minimum:
        raise UserError(f'active_learning.{name} must be an integer >= {minimum}, got {value!r}.')


@dataclass(frozen=True)
class ALSettings:
    """One AL experiment, checked when it is made and never changed after.

    Args:
        initial_labeled: Initial labeled images: a count, or a fraction of the pool in (0, 1).
        budget: Images added per cycle, or a list with one count per acquisition
            (``num_cycles - 1`` of them; e.g. ``[250, 500, 1000, 2000]`` doubles 250 up to 4,000).
        num_cycles: Trainings per trial (``num_cycles - 1`` acquisitions between them). A run may
            be resumed with more cycles than it was started with; nothing else may change.
        scorer: Scorer config (``mmal.registry.SCORERS``), e.g. ``dict(type='Entropy')``. None:
            the default of :func:`~mmal.engine.method.build_method` (``Random`` when the selection
            ranks scores, none for one that does not: BADGE, TypiClust, ...).
        adapter: Adapter config; ``type`` defaults to the model's ``default_adapter``
            (``ClassificationAdapter`` for ``ImageClassifier``), else ``'DetectionAdapter'``.
        selection: Selector config (``mmal.registry.SELECTORS``), e.g. ``dict(type='TopK')``,
            ``dict(type='RandomSubsetTopK', subset_size=10000)``, ``dict(type='BADGE')``,
            ``dict(type='KCenterGreedy')`` (core-set); None is ``TopK``. The strings
            ``'topk'``, ``'random_subset_topk'`` and ``'coreset'`` of older configs still work.
        subset_size: Only with ``selection='random_subset_topk'`` (older configs): its subset.
        retrain: ``'scratch'`` (the study's recommendation) or ``'finetune'`` from the previous cycle.
            "Scratch" starts every cycle from the config's ``load_from`` when it has one (and from the
            backbone's ``init_cfg``); ``'finetune'`` starts cycle 0 there.
        num_trials: Independent trials; trial ``t`` starts from a labeled set drawn from ``seed`` and
            ``t`` only, so every method compares on the same splits.
        seed: Base seed.
        metric: The metric of the per-cycle summary.
        batch_size: Images per acquisition batch.
        num_workers: Dataloader workers of the acquisition pass.
        semi_supervised: Train on the unlabeled pool too (CSD, MixMatch): ``labeled_ratio`` of
            every batch (default 0.5) are labeled images, the rest unlabeled ones, which go
            through ``unlabeled_pipeline`` (default: the training pipeline) ``unlabeled_views``
            times (default 1; MixMatch's K). Needs an iteration-based training loop.
        cycle_hooks: More :class:`~mmal.active.cycle_hooks.CycleHook` configs (``CYCLE_HOOKS``),
            called around every cycle's steps besides the driver's own.
        budget_unit: ``'images'`` (default) or ``'boxes'``: the budget counts the ground-truth boxes
            of the images bought (annotators are paid per box); each cycle takes the selector's picks
            until the next would exceed the budget (the first is always taken).
        annotations: What to do with boxes outside the image (``outside='refuse'|'clip'``), of zero
            or negative size (``degenerate='refuse'|'skip'``) and objects of unknown classes
            (``unknown_class='refuse'|'skip'``); everything is refused by default
            (:mod:`mmal.datasets.annotations`).
        annotator: A simulated annotator (``ANNOTATORS``, :mod:`mmal.active.annotator`) deciding the
            labels that come back for every image labeled, e.g. ``dict(type='NoisyAnnotator',
            drop=0.1, swap=0.1, shift=0.1)``; default: the true labels.
        stop: A stopping rule on the agreement of successive models (:mod:`mmal.active.stopping`),
            e.g. ``dict(threshold=0.99, window=3, end_trial=True)``; default: none (no signal either).
        features: Where the selector's features come from (:mod:`mmal.engine.features`):
            ``dict(source='model')`` (default: the cycle's model), ``dict(source='self_supervised', ...)``
            (SimCLR on the pool, cached) or ``dict(source='checkpoint', checkpoint=..., backbone=...)``.
        control_fraction: The share of each batch drawn uniformly at random (default 0: none); the
            cycle's model is scored on it once its labels come back (:mod:`mmal.active.control`).
        gain_estimate: Estimate each batch's gain over random (``gain/<measure>`` with a 95 %
            interval): two shadow models per cycle, trained on the labeled set before the batch plus
            its first picks or its control images, scored on the next batch's returned labels. Needs
            a ``control_fraction``; costs two more trainings a cycle (default False).
    """

    initial_labeled: Union[int, float]
    budget: Union[int, List[int]]
    num_cycles: int
    scorer: Optional[dict] = None
    adapter: dict = field(default_factory=dict)
    selection: Union[str, dict, None] = None
    subset_size: Optional[int] = None
    retrain: str = 'scratch'
    num_trials: int = 1
    seed: int = 0
    metric: Optional[str] = None
    batch_size: int = 8
    num_workers: int = 0
    semi_supervised: Optional[dict] = None
    cycle_hooks: List[dict] = field(default_factory=list)
    budget_unit: str = 'images'
    annotations: dict = field(default_factory=dict)
    annotator: Optional[dict] = None
    stop: Optional[dict] = None
    features: Optional[dict] = None
    control_fraction: float = 0.0
    gain_estimate: bool = False
    #: The scorer and selector, built once (:meth:`method` reseeds them per cycle).
    acquisition: AcquisitionMethod = field(init=False, repr=False, compare=False)
    #: What to do with bad boxes (from ``annotations``).
    annotation_policy: AnnotationPolicy = field(init=False, repr=False, compare=False)
    #: The simulated annotator built from ``annotator`` (None: the true labels).
    labeler: Any = field(init=False, repr=False, compare=False)
    #: The stopping rule of ``stop`` (None: none).
    stop_rule: Optional[StopRule] = field(init=False, repr=False, compare=False)
    #: The label-free feature source of ``features`` (None: the model's features).
    feature_source: Optional[FeatureSource] = field(init=False, repr=False, compare=False)

    @classmethod
    def from_cfg(cls, cfg) -> 'ALSettings':
        section = cfg.get('active_learning')
        if section is None:
            raise UserError('the config has no `active_learning = dict(...)` section; add one (see '
                            'configs/demo/ssd_toyvoc_entropy.py) or train it with tools/train.py instead.')
        if not isinstance(section, dict):
            raise UserError(f'active_learning must be a dict, got {type(section).__name__}.')
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(section) - known
        if unknown:
            raise UserError(f'active_learning has unknown keys {sorted(unknown)}; known keys: {sorted(known)}.')
        missing = {'initial_labeled', 'budget', 'num_cycles'} - set(section)
        if missing:
            raise UserError(f'active_learning needs {sorted(missing)}; add them to the config.')
        values: Dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v)
                                  for k, v in section.items()}
        return cls(**values)

    def __post_init__(self) -> None:
        """Check every value's type and range, and that scorer and selection work together.

        Raises:
            UserError: One sentence naming the key, its value and what is expected.
        """
        value = self.initial_labeled
        if not (_is_int(value) and value >= 1) and not (isinstance(value, float) and 0 < value < 1):
            raise UserError(f'active_learning.initial_labeled must be a count >= 1 or a fraction in (0, 1), '
                            f'got {value!r}.')
        _positive_int('num_cycles', self.num_cycles)
        _positive_int('num_trials', self.num_trials)
        _positive_int('batch_size', self.batch_size)
        _positive_int('num_workers', self.num_workers, minimum=0)
        if not _is_int(self.seed):
            raise UserError(f'active_learning.seed must be an integer, got {self.seed!r}.')
        if isinstance(self.budget, list):
            if not all(_is_int(b) and b >= 1 for b in self.budget):
                raise UserError(f'active_learning.budget must list integers >= 1, got {self.budget!r}.')
            if len(self.budget) != self.num_cycles - 1:
                raise UserError(f'active_learning.budget lists {len(self.budget)} counts for {self.num_cycles - 1} '
                                'acquisitions; give one per acquisition (num_cycles - 1) or a single number.')
        else:
            _positive_int('budget', self.budget)
        if self.budget_unit not in ('images', 'boxes'):
            raise UserError(f"active_learning.budget_unit must be 'images' or 'boxes', got {self.budget_unit!r}.")
        if self.retrain not in RETRAIN:
            raise UserError(f'active_learning.retrain {self.retrain!r} is unknown; choose one of {RETRAIN}.')
        if self.metric is not None and not isinstance(self.metric, str):
            raise UserError(f'active_learning.metric must be a metric name, got {self.metric!r}.')
        if not isinstance(self.adapter, dict):
            raise UserError(f'active_learning.adapter must be a dict, e.g. adapter=dict(score_thr=0.05), got '
                            f'{self.adapter!r}.')
        if self.semi_supervised is not None:
            if not isinstance(self.semi_supervised, dict):
                raise UserError(f'active_learning.semi_supervised must be a dict, got {self.semi_supervised!r}.')
            unknown = set(self.semi_supervised) - set(SEMI_SUPERVISED_KEYS)
            if unknown:
                raise UserError(f'active_learning.semi_supervised has unknown keys {sorted(unknown)}; known keys: '
                                f'{list(SEMI_SUPERVISED_KEYS)}.')
        if not (isinstance(self.cycle_hooks, list) and all(isinstance(h, dict) and h.get('type') in
                                                             CYCLE_HOOKS.module_dict for h in self.cycle_hooks)):
            raise UserError(f'active_learning.cycle_hooks must list cycle hook configs of the registered types '
                            f'{sorted(CYCLE_HOOKS.module_dict)}, got {self.cycle_hooks!r}.')
        if not isinstance(self.annotations, dict):
            raise UserError(f"active_learning.annotations must be a dict, e.g. dict(outside='clip'), got "
                            f'{self.annotations!r}.')
        object.__setattr__(self, 'annotation_policy', AnnotationPolicy.from_cfg(self.annotations))
        object.__setattr__(self, 'labeler', None if self.annotator is None else _build_annotator(self.annotator))
        object.__setattr__(self, 'stop_rule', StopRule.from_cfg(self.stop))
        object.__setattr__(self, 'feature_source', build_features(self.features))
        check_control_fraction(self.control_fraction, self.budget_unit, 'active_learning.')
        check_gain_estimate(self.gain_estimate, self.control_fraction, 'active_learning.')
        object.__setattr__(self, 'acquisition', build_method(self.scorer, self.selection, subset_size=self.subset_size,
                                                             seed=self.seed, where='active_learning.'))
        if self.feature_source is not None and FEATURES not in self.acquisition.requires:
            raise UserError(f'active_learning.features is set but {self.acquisition.name} reads no features; use a '
                            'selection that does (TypiClust, ProbCover, KCenterGreedy, RegimeSwitch with '
                            'switch_coverage) or drop features.')

    def method(self, trial: int, cycle: int) -> AcquisitionMethod:
        """The scorer and selector of (trial, cycle): the run's method, seeded with the cycle's seed."""
        return self.acquisition.reseeded(self.cycle_seed(trial, cycle))

    def initial_count(self, pool_size: int) -> int:
        """The initial labeled count for a pool of ``pool_size`` images."""
        if isinstance(self.initial_labeled, float):
            count = round(self.initial_labeled * pool_size)
        else:
            count = int(self.initial_labeled)
        if not 1 <= count <= pool_size:
            raise UserError(f'active_learning.initial_labeled={self.initial_labeled} does not fit a pool of '
                            f'{pool_size} images; use a count in [1, {pool_size}] or a fraction in (0, 1).')
        return count

    def budget_at(self, cycle: int) -> int:
        """Images the acquisition after cycle ``cycle`` adds."""
        return int(self.budget[cycle]) if isinstance(self.budget, list) else int(self.budget)

    def cycle_seed(self, trial: int, cycle: int) -> int:
        """Seed of training, scorer and selector in (trial, cycle)."""
        return self.seed + 1000 * trial + cycle


def _build_annotator(cfg: Any) -> Any:
    """The annotator of ``active_learning.annotator`` (its own checks raise one sentence)."""
    if not (isinstance(cfg, dict) and cfg.get('type') in ANNOTATORS.module_dict):
        raise UserError(f'active_learning.annotator must be an annotator config of the registered types '
                        f'{sorted(ANNOTATORS.module_dict)}, e.g. dict(type=\'NoisyAnnotator\', drop=0.1), got {cfg!r}.')
    args = {k: v for k, v in cfg.items() if k != 'type'}
    try:  # built directly: the registry's build would prefix the annotator's own sentence
        return ANNOTATORS.get(cfg['type'])(**args)
    except TypeError as err:
        raise UserError(f'active_learning.annotator {cfg!r}: {err}; see mmal/active/annotator.py for its '
                        'arguments.') from None
