"""The selector interface: what a batch-selection method reads and how it is called. Pure torch.

One acquisition round (:class:`mmal.engine.AcquisitionService`) goes:

1. ``candidates(unlabeled)``: the unlabeled pool indices worth scoring (all, or a random subset);
2. for every batch of images, the scorer's per-image scores and ``image_inputs(outputs)``, the
   per-image tensors this selector keeps (features, gradient embeddings, ...), over the
   candidates and, for coverage methods (``needs_labeled``), the labeled images too;
3. ``select(budget, scores, inputs, labeled)`` once, on rank 0.
"""
from __future__ import annotations

import warnings
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from ..outputs import FEATURES


def ranking_key(scores: Tensor) -> Tensor:
    """Floating-point scores with every non-finite value (NaN, ±inf) moved below all finite ones,
    with one warning giving their count."""
    scores = scores if scores.is_floating_point() else scores.float()
    finite = torch.isfinite(scores)
    num_bad = int((~finite).sum())
    if num_bad == 0:
        return scores
    warnings.warn(f'{num_bad} of {scores.numel()} acquisition scores are not finite (NaN or inf); '
                  'they rank last.', RuntimeWarning, stacklevel=3)
    return torch.where(finite, scores, torch.full_like(scores, -torch.inf))


def matvec(x: Tensor, v: Tensor) -> Tensor:
    """``x @ v`` for a tall ``[N, D]`` matrix: the one product the selectors' inner loops (k-center
    greedy, k-means++ seeding, BADGE) do per pick, so its speed is theirs.

    ``torch.mv`` reads ``x`` at the bandwidth of a plain read on the pinned torch (2.13, 2 cores:
    8.6 ms for 200k x 256 against 8.8 ms for ``x.sum()``); the product with a two-row matrix that
    an earlier torch needed took 18.9 ms (``tools/benchmarks/bench_scale.py`` prints both).

    Args:
        x: ``[N, D]`` matrix.
        v: ``[D]`` vector.

    Returns:
        ``[N]``.
    """
    return torch.mv(x, v.to(x.dtype))


def random_subset(num_items: int, subset_size: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """``min(subset_size, num_items)`` distinct indices drawn uniformly, in random order.

    Args:
        num_items: Size ``N`` of the pool.
        subset_size: How many to draw.
        generator: Seeded generator (CPU) that makes the draw reproducible.

    Returns:
        int64 indices in ``[0, N)`` on the CPU.
    """
    return torch.randperm(num_items, generator=generator)[:subset_size]


class Selector:
    """Base class of batch selection: picks ``budget`` rows from what the acquisition pass kept.

    Subclasses set the class attributes and override :meth:`select` (and :meth:`image_inputs`
    when they read model outputs besides the scores).

    Args:
        subset_size: Score only a random ``subset_size`` of the unlabeled pool (the study's
            diversity heuristic, composable with any selector); None scores all of it.
        seed: Seed of the selector's generator (subset draws, tie-breaks, sampling); the
            acquisition service passes each cycle's seed.
    """

    #: Model outputs (keys of :mod:`mmal.outputs`) this selector reads besides the scores.
    requires: FrozenSet[str] = frozenset()
    #: Whether :meth:`select` ranks the scorer's per-image scores (False: it ignores any scorer).
    uses_scores: bool = True
    #: Whether the labeled images' inputs are computed too (coverage methods: core-set, ...).
    needs_labeled: bool = False

    def __init__(self, subset_size: Optional[int] = None, seed: Optional[int] = None) -> None:
        if subset_size is not None and (isinstance(subset_size, bool) or not isinstance(subset_size, int)
                                        or subset_size < 1):
            raise ValueError(f'subset_size must be a positive integer or None, got {subset_size!r}.')
        self.subset_size, self.seed = subset_size, seed
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)

    def candidates(self, unlabeled: Sequence[int]) -> List[int]:
        """The unlabeled pool indices to score: all of them, or a random ``subset_size``.

        Args:
            unlabeled: Unlabeled pool indices.

        Returns:
            Pool indices, a subset of ``unlabeled``.
        """
        if self.subset_size is None:
            return list(unlabeled)
        order = random_subset(len(unlabeled), self.subset_size, self.generator).tolist()
        return [unlabeled[i] for i in order]

    def reset(self) -> None:
        """Back to the state it was built in (its generator re-seeded): the next :meth:`select` repeats
        the picks of the first."""
        self.generator = torch.Generator().manual_seed(0 if self.seed is None else self.seed)

    def report(self) -> Dict[str, float]:
        """What the last :meth:`select` measured that a record should keep (e.g. a coverage); none here."""
        return {}

    def scores_of(self, scores: Optional[Tensor]) -> Tensor:
        """``scores``, which a score-ranking selector must be given."""
        if scores is None:
            raise ValueError(f'{type(self).__name__} ranks scores: pass the scorer\'s scores to select().')
        return scores

    def image_inputs(self, outputs: Mapping) -> Dict[str, Tensor]:
        """The per-image tensors to keep from one batch of model outputs (``[n, ...]`` each).

        Per-box outputs must be reduced here: nothing per box outlives its batch.
        """
        return {}

    def select(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor) -> Tensor:
        """The rows to label next, in pick order.

        Args:
            budget: How many rows to pick (at most the number of unlabeled rows).
            scores: ``[R]`` per-image scores (``None`` when :attr:`uses_scores` is False); rows of
                labeled images hold NaN.
            inputs: ``{name: [R, ...]}``, the :meth:`image_inputs` of every row.
            labeled: ``[R]`` bool, True for rows of labeled images (only with ``needs_labeled``).

        Returns:
            ``[min(budget, unlabeled rows)]`` int64 row indices, none labeled, none twice.
        """
        raise NotImplementedError

    #: Whether :meth:`select_sharded` can select over rows spread across ranks without gathering them.
    shardable: bool = False

    def select_sharded(self, budget: int, scores: Optional[Tensor], inputs: Mapping[str, Tensor], labeled: Tensor,
                       ids: Tensor, kept: Tensor, kept_labeled: Tensor) -> Tensor:
        """:meth:`select` over this rank's rows of a distributed run (:mod:`mmal.selection.sharded`),
        returning exactly the picks :meth:`select` would return on all rows in one process.

        Args:
            budget: As :meth:`select` (every rank passes the same).
            scores: ``[n]`` scores of this rank's rows.
            inputs: ``{name: [n, ...]}`` of this rank's rows.
            labeled: ``[n]`` bool, this rank's rows of labeled images.
            ids: ``[n]`` int64 global row numbers of this rank's rows.
            kept: ``[K]`` int64 global row numbers of every rank's rows, ascending (the rows
                :meth:`select` would see, in its order).
            kept_labeled: ``[K]`` bool, which of ``kept`` are labeled.

        Returns:
            ``[min(budget, unlabeled rows)]`` int64 global row numbers, the same on every rank.
        """
        raise NotImplementedError(f'{type(self).__name__} selects in one process.')

    def acted_by(self) -> str:
        """The name of the selector that made the last :meth:`select` (a composed selector names the
        component that acted), for the acquisition's record."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f'{type(self).__name__}(subset_size={self.subset_size})'


class FeatureSelector(Selector):
    """Base of the coverage selectors: they read every image's ``features``, the labeled ones too.

    Args:
        normalize: L2-normalise the features before :meth:`select` uses them (:meth:`features`).
        **kwargs: ``subset_size`` and ``seed`` of :class:`Selector`.
    """
    requires = frozenset({FEATURES})
    uses_scores = False
    needs_labeled = True

    def __init__(self, normalize: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.normalize = normalize

    def image_inputs(self, outputs: Mapping) -> Dict[str, Tensor]:
        return {FEATURES: outputs[FEATURES].flatten(1).float()}

    def features(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """``[R, D]`` float features of every row, L2-normalised when ``normalize``."""
        x = inputs[FEATURES].float()
        return torch.nn.functional.normalize(x, dim=1) if self.normalize else x
