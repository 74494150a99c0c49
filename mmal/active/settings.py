"""The ``active_learning`` section of a config, validated."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Union

from ..errors import UserError
from ..registry import SCORERS

SELECTIONS = ('topk', 'random_subset_topk', 'coreset')
SEMI_SUPERVISED_KEYS = ('labeled_ratio', 'unlabeled_pipeline', 'unlabeled_views')
RETRAIN = ('scratch', 'finetune')


@dataclass
class ALSettings:
    """One AL experiment.

    Args:
        initial_labeled: Initial labeled images: a count, or a fraction of the pool in (0, 1).
        budget: Images added per cycle, or a list with one count per acquisition
            (``num_cycles - 1`` of them; e.g. ``[250, 500, 1000, 2000]`` doubles 250 up to 4,000).
        num_cycles: Trainings per trial (``num_cycles - 1`` acquisitions between them).
        scorer: Scorer config (``mmal.registry.SCORERS``).
        adapter: Adapter config; ``type`` defaults to the model's ``default_adapter``
            (``ClassificationAdapter`` for ``ImageClassifier``), else ``'DetectionAdapter'``.
        selection: ``'topk'``, ``'random_subset_topk'`` (score a random ``subset_size`` of the
            unlabeled pool only) or ``'coreset'`` (k-center greedy on features).
        subset_size: Candidates of ``random_subset_topk`` (10,000 in the study).
        retrain: ``'scratch'`` (the study's recommendation) or ``'finetune'`` from the previous cycle.
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
    """

    initial_labeled: Union[int, float]
    budget: Union[int, List[int]]
    num_cycles: int
    scorer: dict = field(default_factory=lambda: dict(type='Random'))
    adapter: dict = field(default_factory=dict)
    selection: str = 'topk'
    subset_size: int = 10000
    retrain: str = 'scratch'
    num_trials: int = 1
    seed: int = 0
    metric: Optional[str] = None
    batch_size: int = 8
    num_workers: int = 0
    semi_supervised: Optional[dict] = None

    @classmethod
    def from_cfg(cls, cfg) -> 'ALSettings':
        section = cfg.get('active_learning')
        if section is None:
            raise UserError('the config has no `active_learning = dict(...)` section; add one (see '
                            'configs/demo/ssd_toyvoc_entropy.py) or train it with tools/train.py instead.')
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise UserError(f'active_learning has unknown keys {sorted(unknown)}; known keys: {sorted(known)}.')
        missing = {'initial_labeled', 'budget', 'num_cycles'} - set(section)
        if missing:
            raise UserError(f'active_learning needs {sorted(missing)}; add them to the config.')
        settings = cls(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in section.items()})
        settings.validate()
        return settings

    def validate(self) -> None:
        budgets = self.budget if isinstance(self.budget, (list, tuple)) else [self.budget]
        if min(budgets, default=1) < 1 or self.num_cycles < 1 or self.num_trials < 1:
            raise UserError('active_learning.budget, num_cycles and num_trials must be positive integers, got '
                            f'{self.budget}, {self.num_cycles}, {self.num_trials}.')
        if isinstance(self.budget, (list, tuple)) and len(self.budget) != self.num_cycles - 1:
            raise UserError(f'active_learning.budget lists {len(self.budget)} counts for {self.num_cycles - 1} '
                            'acquisitions; give one per acquisition (num_cycles - 1) or a single number.')
        if self.semi_supervised is not None:
            unknown = set(self.semi_supervised) - set(SEMI_SUPERVISED_KEYS)
            if unknown:
                raise UserError(f'active_learning.semi_supervised has unknown keys {sorted(unknown)}; known keys: '
                                f'{list(SEMI_SUPERVISED_KEYS)}.')
        if self.selection not in SELECTIONS:
            raise UserError(f'active_learning.selection {self.selection!r} is unknown; choose one of {SELECTIONS}.')
        if self.retrain not in RETRAIN:
            raise UserError(f'active_learning.retrain {self.retrain!r} is unknown; choose one of {RETRAIN}.')
        name = self.scorer.get('type')
        if name not in SCORERS.module_dict:
            raise UserError(f'unknown scorer {name!r}; registered scorers: {", ".join(sorted(SCORERS.module_dict))}.')
        if self.selection == 'coreset' and name != 'CoreSet':
            raise UserError(f"selection='coreset' needs scorer=dict(type='CoreSet'), got {name!r}.")

    def initial_count(self, pool_size: int) -> int:
        """The initial labeled count for a pool of ``pool_size`` images."""
        if isinstance(self.initial_labeled, float) and 0 < self.initial_labeled < 1:
            count = round(self.initial_labeled * pool_size)
        else:
            count = int(self.initial_labeled)
        if not 1 <= count <= pool_size:
            raise UserError(f'active_learning.initial_labeled={self.initial_labeled} does not fit a pool of '
                            f'{pool_size} images; use a count in [1, {pool_size}] or a fraction in (0, 1).')
        return count

    def budget_at(self, cycle: int) -> int:
        """Images the acquisition after cycle ``cycle`` adds."""
        return int(self.budget[cycle]) if isinstance(self.budget, (list, tuple)) else int(self.budget)

    def cycle_seed(self, trial: int, cycle: int) -> int:
        """Seed of training and random acquisition in (trial, cycle)."""
        return self.seed + 1000 * trial + cycle
