"""Acquisition: the one path from a trained model and a pool to the images to label.

:func:`acquire` is the entry the AL driver, ``ActiveLearningHook``, ``tools/al_select.py`` and a
labeling project's ``select`` all call: an :class:`AcquisitionSpec` (the method, built by
:func:`~mmal.engine.method.build_method`, the budget and its unit, the adapter) plus a model, a pool
and its labeled part give one :class:`~mmal.records.Selection` record. Underneath,
:class:`AcquisitionService` runs one round:

1. the selector names the candidates (the unlabeled pool, or a random subset of it);
2. every rank streams its share of the candidates (and, for coverage selectors, of the labeled
   images) through the adapter, keeping per image the scorer's score and the selector's inputs
   (a :class:`Shard`); unreadable images are skipped and reported;
3. a selector that can select over spread rows (``shardable``: TopK, KCenterGreedy) does so on
   every rank with its own shard (:mod:`mmal.selection.sharded`: nothing whole-pool is gathered,
   the picks are exactly the one-process picks); for any other, rank 0 gathers the shards and
   selects once, and the result is broadcast to every rank.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import all_gather_object, broadcast_object_list, get_rank, get_world_size
from torch import Tensor, nn
from tqdm import tqdm

from ..datasets.subset import IndexSubset
from ..datasets.unreadable import pool_loader, read_error
from ..errors import UserError
from ..fileio import commit, temp_path
from ..outputs import FEATURES
from ..records import Pick, Selection, UnreadableImage
from ..registry import ADAPTERS
from .features import FeatureSource, PoolFeatures
from .method import AcquisitionMethod, build_method


def build_adapter(model: Optional[nn.Module], requires: FrozenSet[str], cfg: Optional[dict] = None) -> Any:
    """The adapter (``mmal.registry.ADAPTERS``) that feeds ``model``'s outputs to a scorer and selector.

    Args:
        model: The trained model (unwrapped).
        requires: The output keys to compute.
        cfg: Adapter options; ``type`` defaults to the model's ``default_adapter`` (classifiers:
            ``ClassificationAdapter``) or ``DetectionAdapter``.
    """
    cfg = dict(cfg or {})
    cfg.setdefault('type', getattr(model, 'default_adapter', 'DetectionAdapter'))
    return ADAPTERS.build(cfg, default_args=dict(model=model, requires=requires))


def row_of(rows: Sequence[int]) -> Tensor:
    """``[max index + 1]`` int64: the position in ``rows`` of each pool index it holds (-1 elsewhere); a
    tensor rather than a dict, 8 bytes per pool image."""
    indices = torch.as_tensor(rows, dtype=torch.long)
    where = torch.full((int(indices.max()) + 1 if len(indices) else 0, ), -1, dtype=torch.long)
    where[indices] = torch.arange(len(indices))
    return where


@dataclass
class Shard:
    """What one rank kept of its share of the scored rows.

    Attributes:
        indices: Pool indices of the rows read, in the order of ``scores`` and ``inputs``.
        rows: Their positions in the acquisition's row list (candidates, then labeled images).
        scores: ``[n]`` scores of those rows, or None without a scorer.
        inputs: ``{name: [n, ...]}`` per-image selector inputs.
        unreadable: ``{pool index: error}`` of the rows that could not be read.
    """

    indices: List[int] = field(default_factory=list)
    rows: List[int] = field(default_factory=list)
    scores: Optional[Tensor] = None
    inputs: Dict[str, Tensor] = field(default_factory=dict)
    unreadable: Dict[int, str] = field(default_factory=dict)


def save_piece(piece: Shard, path: str) -> None:
    """Save a scored piece of a shard atomically (tensors and plain lists: loadable with weights_only)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = temp_path(path)
    torch.save(dict(indices=piece.indices, rows=piece.rows, scores=piece.scores, inputs=piece.inputs,
                    unreadable=[[i, e] for i, e in piece.unreadable.items()]), tmp)
    commit(tmp, path)


def load_piece(path: str, rows: List[int]) -> Optional[Shard]:
    """The piece saved at ``path`` if it holds exactly ``rows`` (read or unreadable), else None."""
    if not osp.isfile(path):
        return None
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged piece is scored again
        return None
    piece = Shard(indices=list(saved['indices']), rows=list(saved['rows']), scores=saved['scores'],
                  inputs=dict(saved['inputs']), unreadable={int(i): str(e) for i, e in saved['unreadable']})
    if len(piece.rows) + len(piece.unreadable) != len(rows) or not set(piece.rows) <= set(rows):
        return None
    return piece


def merge_pieces(pieces: List[Shard]) -> Shard:
    """One shard from its pieces, in order."""
    scores = [p.scores for p in pieces if p.scores is not None]
    keys: List[str] = next((list(p.inputs) for p in pieces if p.inputs), [])
    return Shard(indices=[i for p in pieces for i in p.indices], rows=[r for p in pieces for r in p.rows],
                 scores=torch.cat(scores) if scores else None,
                 inputs={k: torch.cat([p.inputs[k] for p in pieces if p.inputs]) for k in keys},
                 unreadable={i: e for p in pieces for i, e in p.unreadable.items()})


@dataclass
class AcquisitionResult:
    """What one acquisition round decided.

    Attributes:
        picks: Pool indices to label next, in pick order.
        scores: The score of each pick, or None when the selector ranks no score.
        unreadable: ``{pool index: error}`` of the images that could not be read (skipped).
        num_candidates: How many unlabeled images were candidates.
        acted_by: The selector that picked (a composed selector's acting component).
        report: What the selector measured on the way (:meth:`~mmal.selection.base.Selector.report`).
    """
    picks: List[int]
    scores: Optional[List[float]]
    unreadable: Dict[int, str] = field(default_factory=dict)
    num_candidates: int = 0
    acted_by: str = ''
    report: Dict[str, Any] = field(default_factory=dict)


class AcquisitionService:
    """Model + pool + labeled set + method + budget -> :class:`AcquisitionResult`.

    Args:
        method: The scorer and selector (:func:`~mmal.engine.method.build_method`).
        adapter: Adapter options (``type`` defaults to the model's).
        batch_size: Images per scoring batch.
        num_workers: Dataloader workers of the scoring pass.
        progress: Show a progress bar (rank 0).
        shard_dir: Where the scoring pass keeps its pieces (resumable), or None.
        features: A label-free feature source (:mod:`mmal.engine.features`) whose features the
            selector reads instead of the model's; None: the model's.
        features_cache: The run's cache folder for them (the source's own ``cache_dir`` wins).
    """

    #: Rows per saved piece of a rank's shard (with ``shard_dir``).
    piece_size: int = 2048

    def __init__(self, method: AcquisitionMethod, adapter: Optional[dict] = None, batch_size: int = 8,
                 num_workers: int = 0, progress: bool = True, shard_dir: Optional[str] = None,
                 features: Optional[FeatureSource] = None, features_cache: Optional[str] = None) -> None:
        self.shard_dir = shard_dir
        self.features = features if features is not None and FEATURES in method.requires else None
        self.features_cache = features_cache
        #: The label-free features of the last pool scored (None: the model's were read).
        self.pool_features: Optional[PoolFeatures] = None
        self.method = method
        self.scorer, self.selector = method.scorer, method.selector
        self.adapter_cfg = dict(adapter or {})
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress

    @property
    def requires(self) -> FrozenSet[str]:
        """The model outputs the scorer and selector read (features not, when a label-free source gives them)."""
        return self.method.requires - {FEATURES} if self.features is not None else self.method.requires

    def check_model(self, model: nn.Module) -> None:
        """Fail now, not after training, if ``model`` cannot give what the method reads.

        Raises:
            UserError: One sentence naming what is unsupported and what to use instead.
        """
        try:
            build_adapter(model, self.requires, self.adapter_cfg)
        except (TypeError, ValueError, KeyError) as err:
            method = type(self.scorer).__name__ if self.scorer is not None else type(self.selector).__name__
            raise UserError(f'{method} cannot score {type(model).__name__}: {err}') from None

    # -- one round -------------------------------------------------------------------------------------
    def run(self, model: Optional[nn.Module], pool: Any, labeled: Sequence[int], budget: int,
            unlabeled: Optional[Sequence[int]] = None, cost: Optional[Sequence[float]] = None) -> AcquisitionResult:
        """Choose up to ``budget`` images of ``pool`` to label next.

        Every rank of a distributed run calls it with the same arguments.

        Args:
            model: The trained model (unwrapped); None for a method that reads no model output (Random).
            pool: Dataset of every image, with the scoring pipeline; ``get_data_info`` names them.
            labeled: Pool indices already labeled.
            budget: How many to pick.
            unlabeled: The unlabeled pool indices to consider (default: all not in ``labeled``).
            cost: The cost of labeling each pool image (e.g. its boxes); the budget is then in these
                units (see :meth:`_choose`) instead of images.

        Returns:
            The same :class:`AcquisitionResult` on every rank.

        Raises:
            UserError: Not one candidate image could be read.
        """
        labeled = sorted(set(labeled))
        if unlabeled is None:
            taken = set(labeled)
            unlabeled = [i for i in range(len(pool)) if i not in taken]
        candidates = self.selector.candidates(list(unlabeled))
        if not candidates:  # the pool is exhausted
            return AcquisitionResult(picks=[], scores=[] if self.selector.uses_scores else None)
        rows = candidates + (labeled if self.selector.needs_labeled else [])
        world = get_world_size()
        found = self.pool_features = self.features.of(pool, self.features_cache) if self.features else None
        if self.requires:
            shard = self._score(model, pool, rows)
            if found is not None and found.unreadable:  # no features: as unreadable as the scoring pass's
                read = set(shard.indices)
                shard.unreadable.update({i: err for i, err in found.unreadable.items() if i in read})
            if world > 1 and self.selector.shardable:
                parts = all_gather_object((shard.unreadable, len(shard.indices)))
                if all(count for _, count in parts):  # (a rank without a readable row: gathered below)
                    unreadable = {i: err for part, _ in parts for i, err in part.items()}
                    return self._select_sharded(pool, candidates, rows, shard, unreadable, budget, cost)
            scores, inputs, unreadable = self._assemble(rows, all_gather_object(shard) if world > 1 else [shard])
        elif found is not None:  # label-free features only: no forward pass
            listed = set(rows)
            scores, unreadable = None, {i: err for i, err in found.unreadable.items() if i in listed}
            inputs = self.selector.image_inputs({FEATURES: found.features[torch.as_tensor(rows, dtype=torch.long)]})
        else:  # nothing to compute (random): no forward pass, one draw for the whole candidate list
            scores, inputs, unreadable = None, {}, {}
        result: Union[AcquisitionResult, UserError, None] = None
        if get_rank() == 0:
            try:
                result = self._select(pool, candidates, rows, scores, inputs, unreadable, budget, cost)
            except UserError as err:  # every rank raises it, none waits for a result that never comes
                result = err
        if world > 1:
            box = [result]
            broadcast_object_list(box, src=0)
            result = box[0]
        if isinstance(result, UserError):
            raise UserError(str(result))
        assert isinstance(result, AcquisitionResult)  # rank 0 always decides one or the other
        return result

    def _score(self, model: Optional[nn.Module], pool: Any, rows: List[int]) -> Shard:
        """Scores and selector inputs of this rank's share of ``rows`` (every ``world``-th row).

        With a ``shard_dir``, the share is scored in pieces of :attr:`piece_size` rows, each saved
        there when done (``rank<r>of<w>_<start>.pt``); a rerun loads the pieces it finds and scores
        the rest, so an interrupted acquisition resumes where it was.
        """
        rank, world = get_rank(), get_world_size()
        mine, positions = rows[rank::world], list(range(rank, len(rows), world))
        adapter = build_adapter(model, self.requires, self.adapter_cfg)
        pieces: List[Shard] = []
        with tqdm(total=len(mine), desc='acquisition', unit='img', disable=not (self.progress and rank == 0),
                  dynamic_ncols=True) as bar:
            for start in range(0, len(mine), self.piece_size if self.shard_dir else max(len(mine), 1)):
                end = min(start + (self.piece_size if self.shard_dir else len(mine)), len(mine))
                path = osp.join(self.shard_dir, f'rank{rank}of{world}_{start:09d}.pt') if self.shard_dir else None
                piece = load_piece(path, positions[start:end]) if path else None
                if piece is None:
                    piece = self._score_rows(adapter, pool, mine[start:end], positions[start:end], bar)
                    if path:
                        save_piece(piece, path)
                else:
                    bar.update(end - start)
                pieces.append(piece)
        return merge_pieces(pieces)

    def _score_rows(self, adapter: Any, pool: Any, indices: List[int], positions: List[int], bar: Any) -> Shard:
        """Read and score the pool images ``indices`` (rows ``positions``)."""
        loader = pool_loader(IndexSubset(pool, indices=indices), self.batch_size, self.num_workers)
        shard = Shard()
        score_parts: List[Tensor] = []
        input_parts: List[Dict[str, Tensor]] = []
        for batch in loader:
            for pos, err in batch['failed']:
                shard.unreadable[indices[pos]] = err
            if batch['data'] is not None:
                outputs = adapter(batch['data'])
                if self.pool_features is not None:  # the label-free features of these images
                    read = torch.as_tensor([indices[i] for i in batch['indices']], dtype=torch.long)
                    outputs = {**outputs, FEATURES: self.pool_features.features[read]}
                shard.indices += [indices[i] for i in batch['indices']]
                shard.rows += [positions[i] for i in batch['indices']]
                if self.scorer is not None:
                    score_parts.append(self.scorer(outputs).detach().float().cpu())
                input_parts.append({k: v.detach().cpu() for k, v in self.selector.image_inputs(outputs).items()})
            bar.update(len(batch['indices']) + len(batch['failed']))
        shard.scores = torch.cat(score_parts) if score_parts else None
        shard.inputs = {k: torch.cat([p[k] for p in input_parts]) for k in (input_parts[0] if input_parts else {})}
        return shard

    @staticmethod
    def _assemble(rows: List[int], shards: List[Shard]) -> Tuple[Optional[Tensor], Dict[str, Tensor],
                                                                  Dict[int, str]]:
        """Rows of every shard back in ``rows`` order: ``[R]`` scores (NaN where unread), inputs, failures."""
        where = row_of(rows)
        scores: Optional[Tensor] = None
        inputs: Dict[str, Tensor] = {}
        unreadable: Dict[int, str] = {}
        for shard in shards:
            unreadable.update(shard.unreadable)
            at = where[torch.as_tensor(shard.indices, dtype=torch.long)]
            if shard.scores is not None:
                scores = torch.full((len(rows), ), float('nan')) if scores is None else scores
                scores[at] = shard.scores
            for key, value in shard.inputs.items():
                if key not in inputs:
                    inputs[key] = value.new_zeros((len(rows), ) + tuple(value.shape[1:]))
                inputs[key][at] = value
        return scores, inputs, unreadable

    def _choose(self, available: int, ordered: Callable[[int], List[int]], budget: int,
                cost: Optional[Sequence[float]]) -> List[int]:
        """The selector's picks (pool indices): ``budget`` images, or, with ``cost``, as many as fit a
        budget in those units.

        A cost budget (boxes) takes the selector's picks in its order until the next one would exceed
        the budget; the first pick is always taken, so a cycle never buys nothing. Greedy selectors
        pick the same first images whatever the count (the selector is reset to its seed before each
        try), so asking for more when the budget is not spent yet only extends the order.

        Args:
            available: The unlabeled rows the selector may pick.
            ordered: The selector's first ``count`` picks, as pool indices.
            budget: Images, or units of ``cost``.
            cost: The cost of each pool image, or None.
        """
        if cost is None:
            return ordered(min(budget, available))
        count = min(max(1, int(budget)), available)
        while True:
            self.selector.reset()
            taken: List[int] = []
            spent = 0.0
            for index in ordered(count):
                if taken and spent + cost[index] > budget:
                    return taken  # the next pick would exceed the budget
                taken.append(index)
                spent += cost[index]
            if count == available:
                return taken
            count = min(2 * count, available)

    @staticmethod
    def _check_readable(pool: Any, candidates: List[int], unreadable: Dict[int, str]) -> None:
        """Raise when not one candidate could be read."""
        if all(c in unreadable for c in candidates):
            first = candidates[0]
            raise UserError(f'none of the {len(candidates)} candidate pool images could be read (e.g. '
                            f'{pool.get_data_info(first).get("img_path", first)}: {unreadable[first]}); check '
                            'the pool\'s image files and paths.')

    def _select_sharded(self, pool: Any, candidates: List[int], rows: List[int], shard: Shard,
                        unreadable: Dict[int, str], budget: int, cost: Optional[Sequence[float]]) -> AcquisitionResult:
        """Every rank: select over the rows spread across ranks (``selector.select_sharded``); only the
        unreadable images (``unreadable``, gathered) and the picks' scores are gathered."""
        self._check_readable(pool, candidates, unreadable)
        readable = torch.ones(len(rows), dtype=torch.bool)
        bad = [r for r, index in enumerate(rows) if index in unreadable] if unreadable else []
        readable[bad] = False
        kept = readable.nonzero().squeeze(1)
        ids = torch.tensor(shard.rows, dtype=torch.long)

        def ordered(count: int) -> List[int]:
            picked = self.selector.select_sharded(count, shard.scores, shard.inputs, ids >= len(candidates), ids, kept,
                                                  kept >= len(candidates))
            return [rows[int(r)] for r in picked]

        picks = self._choose(int((kept < len(candidates)).sum()), ordered, budget, cost)
        pick_scores = None
        if shard.scores is not None:
            chosen = set(picks)
            known: Dict[int, float] = {}
            for part in all_gather_object({i: float(v) for i, v in zip(shard.indices, shard.scores) if i in chosen}):
                known.update(part)
            pick_scores = [known[i] for i in picks]
        return AcquisitionResult(picks=picks, scores=pick_scores, unreadable=dict(sorted(unreadable.items())),
                                 num_candidates=len(candidates), acted_by=self.selector.acted_by(),
                                 report=self.selector.report())

    def _select(self, pool: Any, candidates: List[int], rows: List[int], scores: Optional[Tensor],
                inputs: Dict[str, Tensor], unreadable: Dict[int, str], budget: int,
                cost: Optional[Sequence[float]] = None) -> AcquisitionResult:
        """Rank 0: drop unreadable rows, select, and (without a forward pass) check the picks can be read."""
        if self.scorer is not None and not self.scorer.requires:
            scores = self.scorer({'num_images': len(candidates)}).float()
        labeled_rows = torch.arange(len(rows)) >= len(candidates)
        while True:
            self._check_readable(pool, candidates, unreadable)
            keep = torch.tensor([i not in unreadable for i in rows], dtype=torch.bool)
            kept = keep.nonzero().squeeze(1)
            kept_rows, kept_labeled = [rows[int(k)] for k in kept], labeled_rows[kept]
            kept_scores = None if scores is None else scores[kept]
            kept_inputs = {k: v[kept] for k, v in inputs.items()}

            def ordered(count: int) -> List[int]:
                return [kept_rows[int(o)] for o in self.selector.select(count, kept_scores, kept_inputs, kept_labeled)]

            picks = self._choose(int((~kept_labeled).sum()), ordered, budget, cost)
            if self.requires or self.pool_features is not None:  # the images were read
                break
            newly = {i: err for i, err in ((i, read_error(pool, i)) for i in picks) if err is not None}
            if not newly:
                break
            unreadable.update(newly)  # never read by the scoring pass: re-select without them
        pick_scores = None
        if scores is not None:
            pick_scores = scores[row_of(rows)[torch.as_tensor(picks, dtype=torch.long)]].tolist()
        return AcquisitionResult(picks=picks, scores=pick_scores, unreadable=dict(sorted(unreadable.items())),
                                 num_candidates=len(candidates), acted_by=self.selector.acted_by(),
                                 report=self.selector.report())


BUDGET_UNITS = ('images', 'boxes')


def check_control_fraction(value: Any, budget_unit: str = 'images', where: str = '') -> None:
    """Check a control share (:attr:`AcquisitionSpec.control_fraction`) wherever a config or flag names it.

    Raises:
        UserError: Not a number in [0, 1), or a share of a budget that is not in images.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f'{where}control_fraction must lie in [0, 1), got {value!r}.')
    if value and budget_unit != 'images':
        raise UserError(f"{where}control_fraction needs a budget in images; set budget_unit='images' or "
                        'control_fraction=0.')


def check_gain_estimate(value: Any, control_fraction: Any, where: str = '') -> None:
    """Check ``gain_estimate`` (shadow models scored against the control share) wherever a config names it.

    Raises:
        UserError: Not a bool, or set without a control share to compare the picks with.
    """
    if not isinstance(value, bool):
        raise UserError(f'{where}gain_estimate must be True or False, got {value!r}.')
    if value and not control_fraction:
        raise UserError(f'{where}gain_estimate compares the picks with a random control share and there is none; set '
                        'control_fraction (e.g. 0.5) or drop gain_estimate.')


@dataclass(frozen=True)
class AcquisitionSpec:
    """What one acquisition asks for, checked once when it is made.

    Attributes:
        method: The scorer and selector (:func:`~mmal.engine.method.build_method`).
        budget: How many images (or boxes, with ``budget_unit='boxes'``) to buy.
        budget_unit: ``'images'``, or ``'boxes'``: the selector's picks are bought in order until the
            next one's boxes would exceed the budget (the first is always bought); the boxes are
            the pool's own (``cost``) or, without them, the model's boxes scoring ``box_threshold``.
        box_threshold: Least score of a model box counted as one to label.
        adapter: Adapter options (``type`` defaults to the model's).
        batch_size: Images per scoring batch.
        num_workers: Dataloader workers of the scoring pass.
        progress: Show a progress bar (rank 0).
        features: A label-free feature source for the selector (:mod:`mmal.engine.features`); None:
            the model's features.
        features_cache: The run's cache folder of those features (the source's ``cache_dir`` wins).
        control_fraction: The share of the budget drawn uniformly at random from the unlabeled images
            the method's picks left (a control for :mod:`mmal.scoring.estimate`); 0: none.
        where: How the user named these values, prefixed to messages (e.g. ``'--'``).
    """

    method: AcquisitionMethod
    budget: int
    budget_unit: str = 'images'
    box_threshold: float = 0.3
    adapter: Optional[Mapping[str, Any]] = None
    batch_size: int = 8
    num_workers: int = 0
    progress: bool = True
    features: Optional[FeatureSource] = None
    features_cache: Optional[str] = None
    control_fraction: float = 0.0
    where: str = ''

    def __post_init__(self) -> None:
        if self.budget_unit not in BUDGET_UNITS:
            raise UserError(f"{self.where}budget_unit must be 'images' or 'boxes', got {self.budget_unit!r}.")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise UserError(f'{self.where}budget must be a positive number of {self.budget_unit}, got '
                            f'{self.budget!r}.')
        if not 0 <= self.box_threshold <= 1:
            raise UserError(f'{self.where}box_threshold must lie in [0, 1], got {self.box_threshold!r}.')
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f'{self.where}batch_size must be a positive number of images, got {self.batch_size!r}.')
        check_control_fraction(self.control_fraction, self.budget_unit, self.where)

    @property
    def num_control(self) -> int:
        """Images of the budget drawn at random as the control (at least one left to the method)."""
        return min(int(round(self.budget * self.control_fraction)), self.budget - 1)

    def control_service(self) -> 'AcquisitionService':
        """The service that draws the control share (uniformly at random, seeded by the method's seed)."""
        return AcquisitionService(build_method(dict(type='Random'), None, seed=self.method.seed + 7919),
                                  batch_size=self.batch_size, num_workers=self.num_workers, progress=False)

    def service(self, shard_dir: Optional[str] = None) -> 'AcquisitionService':
        """The service that runs this acquisition (saving its scored pieces in ``shard_dir``)."""
        return AcquisitionService(self.method, dict(self.adapter or {}), batch_size=self.batch_size,
                                  num_workers=self.num_workers, progress=self.progress, shard_dir=shard_dir,
                                  features=self.features, features_cache=self.features_cache)


def acquire(spec: AcquisitionSpec, model: Optional[nn.Module], dataset: Any, labeled: Sequence[int], /,
            unlabeled: Optional[Sequence[int]] = None, cost: Optional[Sequence[float]] = None,
            shard_dir: Optional[str] = None, **context: Any) -> Selection:
    """Choose the next images to label: the one acquisition entry.

    Every rank of a distributed run calls it with the same arguments and gets the same record.

    Args:
        spec: What to acquire and how.
        model: The trained model (unwrapped, eval mode); None for a method that reads no model output.
        dataset: The pool: every image, with the scoring pipeline; ``get_data_info`` names them.
        labeled: Pool indices already labeled.
        unlabeled: The candidates (default: every pool index not in ``labeled``).
        cost: Each pool image's ground-truth boxes, for ``budget_unit='boxes'`` (default: estimated
            by the model's boxes).
        shard_dir: Where the scoring pass keeps its pieces, so that an interrupted one resumes.
        **context: Where it was made (trial and cycle, the pool file, ...), kept in the record.

    Returns:
        The :class:`~mmal.records.Selection` record (``context`` holds the boxes bought when the
        budget is in boxes: ``num_boxes``, or ``estimated_boxes`` when the model counted them; what
        the selector measured, e.g. ``coverage``; and ``features`` (source, cache key, size,
        seconds) when a label-free source gave them; ``control``: the picks drawn at random, listed
        after the method's, and ``control_stratum``: how many unlabeled images they were drawn from).

    Raises:
        UserError: The model cannot give what the method reads, a budget in boxes without boxes or a
            model, or not one candidate could be read.
    """
    service = spec.service(shard_dir)
    if model is not None:
        service.check_model(model)
    counted = 'num_boxes'
    if spec.budget_unit == 'boxes' and cost is None:
        if model is None:
            raise UserError('a budget in boxes is estimated with the model\'s boxes and there is no model yet; count '
                            'the first batch in images.')
        taken = set(labeled)
        candidates = list(unlabeled) if unlabeled is not None else [i for i in range(len(dataset)) if i not in taken]
        cost = estimated_boxes(model, dataset, spec.box_threshold, candidates, spec.batch_size)
        counted = 'estimated_boxes'
    budget = spec.budget - spec.num_control
    result = service.run(model, dataset, labeled, budget, unlabeled=unlabeled,
                         cost=cost if spec.budget_unit == 'boxes' else None)
    if spec.num_control:  # then drawn uniformly from what the method left: a stratified sample of the pool
        left = set(labeled) | set(result.picks) | set(result.unreadable)
        rest = [i for i in (unlabeled if unlabeled is not None else range(len(dataset))) if i not in left]
        control = spec.control_service().run(None, dataset, [], spec.num_control, unlabeled=rest)
        result = with_control(result, control)
        context.update(control=control.picks, control_stratum=len(rest))
    record = selection_record(result, dataset, spec.method, spec.budget, **context, budget_unit=spec.budget_unit)
    record.context.update(result.report)
    if service.pool_features is not None and service.features is not None:
        record.context['features'] = service.pool_features.summary(service.features.name)
    if spec.budget_unit == 'boxes' and cost is not None:
        record.context[counted] = sum(cost[i] for i in result.picks)
    warning = same_score_warning(record)
    if warning and get_rank() == 0:
        print(warning, file=sys.stderr)
    return record


def with_control(result: AcquisitionResult, control: AcquisitionResult) -> AcquisitionResult:
    """The method's picks followed by the control's (which have no score)."""
    scores = None if result.scores is None else result.scores + [float('nan')] * len(control.picks)
    return AcquisitionResult(picks=result.picks + control.picks, scores=scores,
                             unreadable=dict(sorted({**control.unreadable, **result.unreadable}.items())),
                             num_candidates=result.num_candidates + len(control.picks), acted_by=result.acted_by,
                             report=result.report)


def same_score_warning(record: Selection) -> Optional[str]:
    """A warning when every pick has the same score: the model found nothing to rank the images by
    (an untrained model, or a detector that keeps no box), so the picks are as good as random."""
    scores = [p.score for p in record.selected if p.score is not None and math.isfinite(p.score)]
    if len(scores) < 2 or len(set(scores)) > 1:
        return None
    return (f'warning: every picked image has the same score ({scores[0]:g}): the model finds nothing to rank '
            'them by (e.g. it keeps no box), so the picks are as good as random; lower the adapter\'s score_thr '
            'or give the scorer empty_score=\'max\'.')


def selection_record(result: AcquisitionResult, dataset: Any, method: AcquisitionMethod, budget: int,
                     **context: Any) -> Selection:
    """The :class:`~mmal.records.Selection` record of one acquisition (driver, hook and al_select alike).

    Args:
        result: What the service decided.
        dataset: The scored pool; ``get_data_info(i)`` names image ``i`` (``img_id``, ``img_path``).
        method: The method that decided it.
        budget: How many images were asked for.
        **context: Where it was made (trial and cycle, the pool file, ...).
    """
    def info(i: int) -> Dict[str, Any]:
        data = dataset.get_data_info(i)
        image_id = data.get('img_id', i)
        return dict(index=i, img_id=image_id if isinstance(image_id, int) else str(image_id),
                    img_path=str(data.get('img_path', '')))

    scores = result.scores if result.scores is not None else [None] * len(result.picks)
    return Selection(scorer=method.scorer_cfg, selection=method.selection_cfg, budget=budget,
                     num_candidates=result.num_candidates, acted_by=result.acted_by or method.name,
                     selected=[Pick(**info(i), score=score) for i, score in zip(result.picks, scores)],
                     unreadable=[UnreadableImage(**info(i), error=err) for i, err in result.unreadable.items()],
                     context=context)


#: Boxes of one image: ``(xyxy boxes, scores, labels)``.
Detections = Tuple[List[List[float]], List[float], List[int]]


def predict_boxes(model: Any, dataset: Any, threshold: float, batch_size: int = 8,
                  indices: Optional[Sequence[int]] = None) -> Dict[int, Detections]:
    """A detector's own boxes (``predict``, in original image pixels) above ``threshold``.

    Args:
        model: The detector (eval mode).
        dataset: Images with the test pipeline (annotations not loaded).
        threshold: Least score of a box kept.
        batch_size: Images per batch.
        indices: Which images of ``dataset`` (default: all); unreadable ones are left out.

    Returns:
        ``{dataset index: (xyxy boxes, scores, labels)}``.
    """
    out: Dict[int, Detections] = {}
    for index, sample in predicted_samples(model, dataset, batch_size, indices):
        keep = sample.pred_instances[sample.pred_instances.scores >= threshold]
        out[index] = (keep.bboxes.tolist(), keep.scores.tolist(), keep.labels.tolist())
    return out


def predict_classes(model: Any, dataset: Any, batch_size: int = 8,
                    indices: Optional[Sequence[int]] = None) -> Dict[int, int]:
    """A classifier's predicted class of each image (``pred_label``); unreadable images are left out.

    Returns:
        ``{dataset index: class}``.
    """
    return {index: int(sample.pred_label.view(-1)[0])
            for index, sample in predicted_samples(model, dataset, batch_size, indices)}


def predict_confidences(model: Any, dataset: Any, batch_size: int = 8,
                        indices: Optional[Sequence[int]] = None) -> Dict[int, Tuple[int, float]]:
    """A classifier's predicted class of each image and the probability it gives it (``pred_score``);
    unreadable images are left out.

    Returns:
        ``{dataset index: (class, probability)}``.
    """
    out = {}
    for index, sample in predicted_samples(model, dataset, batch_size, indices):
        label = int(sample.pred_label.view(-1)[0])
        out[index] = (label, float(sample.pred_score.view(-1)[label]))
    return out


def predicted_samples(model: Any, dataset: Any, batch_size: int = 8,
                      indices: Optional[Sequence[int]] = None) -> Iterator[Tuple[int, Any]]:
    """``(dataset index, the model's test_step data sample)`` of each readable image of ``indices``
    (default: all), in batches, without gradients."""
    chosen = list(range(len(dataset))) if indices is None else list(indices)
    with torch.no_grad():
        for batch in pool_loader(IndexSubset(dataset, indices=chosen), batch_size):
            if batch['data'] is None:
                continue
            for position, sample in zip(batch['indices'], model.test_step(batch['data'])):
                yield chosen[position], sample


def estimated_boxes(model: Any, dataset: Any, threshold: float, indices: Sequence[int],
                    batch_size: int = 8) -> List[float]:
    """The labeling cost of each image of ``dataset`` in boxes, estimated by the detector's boxes that
    score at least ``threshold`` (for a budget in boxes where no ground truth is known); 0 for images
    outside ``indices``."""
    found = predict_boxes(model, dataset, threshold, batch_size, indices)
    cost = [0.0] * len(dataset)
    for index, (boxes, _, _) in found.items():
        cost[index] = float(len(boxes))
    return cost
