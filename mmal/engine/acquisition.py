"""The acquisition service: the one path from a trained model and a pool to the images to label.

``AcquisitionService.run(model, pool, labeled, budget)`` is used by the AL driver, by
``ActiveLearningHook`` and by ``tools/al_select.py``:

1. the selector names the candidates (the unlabeled pool, or a random subset of it);
2. every rank streams its share of the candidates (and, for coverage selectors, of the labeled
   images) through the adapter, keeping per image the scorer's score and the selector's inputs;
   unreadable images are skipped and reported;
3. rank 0 gathers the shards and selects once; the result is broadcast to every rank.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_gather_object, broadcast_object_list, get_rank, get_world_size
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..datasets.subset import IndexSubset
from ..errors import UserError
from ..registry import ADAPTERS, SCORERS, SELECTORS
from ..scoring.scorers import Scorer
from ..selection.base import Selector

#: Old ``selection`` strings and the selector each one names.
SELECTION_ALIASES = {'topk': 'TopK', 'random_subset_topk': 'RandomSubsetTopK', 'coreset': 'KCenterGreedy'}


def is_unreadable(err: BaseException) -> bool:
    """Whether ``err`` says an image file is missing, unreadable or undecodable (and nothing else:
    a bug in a pipeline must not pass for a bad image)."""
    if isinstance(err, OSError):  # missing, permission, truncated / unidentified image (PIL)
        return True
    if type(err).__name__ == 'error' and type(err).__module__ == 'cv2':
        return True
    return isinstance(err, AssertionError) and 'failed to load image' in str(err)  # mmcv's LoadImageFromFile


class SkipUnreadable(Dataset):
    """Wraps a dataset so that an image that cannot be read is skipped and reported, not fatal.

    Items become ``(index, item, None)``, or ``(index, None, error)`` when the file cannot be read.
    Any other exception propagates.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        try:
            return idx, self.dataset[idx], None
        except Exception as err:  # noqa: BLE001 - filtered by is_unreadable just below
            if not is_unreadable(err):
                raise
            return idx, None, f'{type(err).__name__}: {err}'


def collate_skipping(batch: List[Tuple]) -> dict:
    """Collate :class:`SkipUnreadable` items: the readable ones as a batch, the others as failures."""
    ok = [(i, item) for i, item, _ in batch if item is not None]
    return dict(data=pseudo_collate([item for _, item in ok]) if ok else None, indices=[i for i, _ in ok],
                failed=[(i, err) for i, item, err in batch if item is None])


def pool_loader(dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """A dataloader over ``dataset`` in order, skipping (and reporting) unreadable images."""
    return DataLoader(SkipUnreadable(dataset), batch_size=batch_size, num_workers=num_workers, shuffle=False,
                      collate_fn=collate_skipping)


def build_adapter(model: nn.Module, requires, cfg: Optional[dict] = None):
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


def default_scorer(selection: Union[str, dict, None], scorer: dict) -> Optional[dict]:
    """``scorer`` when the selection ranks a scorer's scores (or none is named), else None: the
    default scorer of a run that names none."""
    if selection is None:
        return scorer
    name = SELECTION_ALIASES.get(selection, selection) if isinstance(selection, str) else selection.get('type')
    selector = SELECTORS.get(name)
    return scorer if selector is None or selector.uses_scores else None  # an unknown name is reported later


def _build(registry, cfg: dict, seed: int, what: str):
    """Build ``cfg`` from ``registry`` with the cycle's seed, one sentence on a bad config."""
    name = cfg.get('type')
    if name not in registry.module_dict:
        raise UserError(f'unknown {what} {name!r}; registered: {", ".join(sorted(registry.module_dict))}.')
    try:
        return registry.build(cfg, default_args=dict(seed=seed))
    except (TypeError, ValueError) as err:
        raise UserError(f'{what} {cfg}: {err}') from None


def build_method(scorer: Optional[dict], selection: Union[str, dict, None],
                 seed: int = 0) -> Tuple[Optional[Scorer], Selector]:
    """The scorer and selector a config names, checked to work together.

    Args:
        scorer: Scorer config (``mmal.registry.SCORERS``), or None for a selector that ranks no score.
        selection: Selector config (``mmal.registry.SELECTORS``), one of the old strings
            (``'topk'``, ``'random_subset_topk'``, ``'coreset'``), or None for the scorer's default.
        seed: Seed of both (the cycle's seed in a run).

    Returns:
        ``(scorer or None, selector)``.

    Raises:
        UserError: An unknown name, a bad keyword, or a scorer the selector would ignore.
    """
    built = _build(SCORERS, dict(scorer), seed, 'scorer') if scorer is not None else None
    if selection is None:
        if built is None:
            raise UserError('name a scorer (active_learning.scorer=dict(type=...)) or a selection that needs none '
                            '(e.g. selection=dict(type=\'BADGE\')).')
        selection = built.default_selection()
    if isinstance(selection, str):
        if selection not in SELECTION_ALIASES:
            raise UserError(f'selection {selection!r} is unknown; name a selector with selection=dict(type=...) '
                            f'(registered: {", ".join(sorted(SELECTORS.module_dict))}).')
        selection = dict(type=SELECTION_ALIASES[selection])
    selector = _build(SELECTORS, dict(selection), seed, 'selection')
    name = type(selector).__name__
    if selector.uses_scores and (built is None or not built.ranks):
        what = 'no scorer' if built is None else f'the scorer {type(built).__name__}, which has no per-image score'
        raise UserError(f'selection {name} ranks scores but the run has {what}; name a scorer such as Entropy, '
                        'or use a selection that needs none (KCenterGreedy, BADGE, TypiClust, ProbCover, BatchBALD).')
    if not selector.uses_scores and built is not None and built.ranks:
        raise UserError(f'selection {name} ranks no score, so the scorer {type(built).__name__} would be ignored; '
                        'drop the scorer or use a score-based selection (TopK, RandomSubsetTopK, PowerSampling).')
    return built, selector


@dataclass
class AcquisitionResult:
    """What one acquisition round decided.

    Attributes:
        picks: Pool indices to label next, in pick order.
        scores: The score of each pick, or None when the selector ranks no score.
        unreadable: ``{pool index: error}`` of the images that could not be read (skipped).
        num_candidates: How many unlabeled images were candidates.
    """
    picks: List[int]
    scores: Optional[List[float]]
    unreadable: Dict[int, str] = field(default_factory=dict)
    num_candidates: int = 0


class AcquisitionService:
    """Model + pool + labeled set + scorer + selector + budget -> :class:`AcquisitionResult`.

    Args:
        scorer: Scorer config, or None for a selector that ranks no score.
        selection: Selector config (see :func:`build_method`).
        adapter: Adapter options (``type`` defaults to the model's).
        seed: Seed of the scorer and selector.
        batch_size: Images per scoring batch.
        num_workers: Dataloader workers of the scoring pass.
        progress: Show a progress bar (rank 0).
    """

    def __init__(self, scorer: Optional[dict], selection: Union[str, dict, None] = None,
                 adapter: Optional[dict] = None, seed: int = 0, batch_size: int = 8, num_workers: int = 0,
                 progress: bool = True) -> None:
        self.scorer, self.selector = build_method(scorer, selection, seed)
        self.adapter_cfg = dict(adapter or {})
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress

    @property
    def requires(self) -> frozenset:
        """The model outputs the scorer and selector read."""
        scored = self.scorer.requires if self.scorer is not None and self.selector.uses_scores else frozenset()
        return frozenset(scored) | self.selector.requires

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
    def run(self, model: nn.Module, pool, labeled: Sequence[int], budget: int,
            unlabeled: Optional[Sequence[int]] = None) -> AcquisitionResult:
        """Choose up to ``budget`` images of ``pool`` to label next.

        Every rank of a distributed run calls it with the same arguments.

        Args:
            model: The trained model (unwrapped).
            pool: Dataset of every image, with the scoring pipeline; ``get_data_info`` names them.
            labeled: Pool indices already labeled.
            budget: How many to pick.
            unlabeled: The unlabeled pool indices to consider (default: all not in ``labeled``).

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
        if self.requires:
            scores, inputs, unreadable = self._score(model, pool, rows)
        else:  # nothing to compute (random): no forward pass, one draw for the whole candidate list
            scores, inputs, unreadable = None, {}, {}
        result = None
        if get_rank() == 0:
            try:
                result = self._select(pool, candidates, rows, scores, inputs, unreadable, budget)
            except UserError as err:  # every rank raises it, none waits for a result that never comes
                result = err
        if get_world_size() > 1:
            box = [result]
            broadcast_object_list(box, src=0)
            result = box[0]
        if isinstance(result, UserError):
            raise UserError(str(result))
        return result

    def _score(self, model, pool, rows: List[int]):
        """Scores and selector inputs of ``rows`` (this rank's share, gathered on every rank)."""
        rank, world = get_rank(), get_world_size()
        mine = rows[rank::world]
        adapter = build_adapter(model, self.requires, self.adapter_cfg)
        loader = pool_loader(IndexSubset(pool, indices=mine), self.batch_size, self.num_workers)
        positions, score_parts, input_parts, failed = [], [], [], {}
        with tqdm(total=len(mine), desc='acquisition', unit='img', disable=not (self.progress and rank == 0),
                  dynamic_ncols=True) as bar:
            for batch in loader:
                for pos, err in batch['failed']:
                    failed[mine[pos]] = err
                if batch['data'] is not None:
                    outputs = adapter(batch['data'])
                    positions += [mine[i] for i in batch['indices']]
                    if self.scorer is not None and self.selector.uses_scores:
                        score_parts.append(self.scorer(outputs).detach().float().cpu())
                    input_parts.append({k: v.detach().cpu() for k, v in self.selector.image_inputs(outputs).items()})
                bar.update(len(batch['indices']) + len(batch['failed']))
        shard = (positions, torch.cat(score_parts) if score_parts else None,
                 {k: torch.cat([p[k] for p in input_parts]) for k in (input_parts[0] if input_parts else {})}, failed)
        shards = all_gather_object(shard) if world > 1 else [shard]
        return self._assemble(rows, shards)

    @staticmethod
    def _assemble(rows: List[int], shards) -> tuple:
        """Rows of every shard back in ``rows`` order: ``[R]`` scores (NaN where unread), inputs, failures."""
        where = {index: r for r, index in enumerate(rows)}
        scores, inputs, unreadable = None, {}, {}
        for positions, shard_scores, shard_inputs, failed in shards:
            unreadable.update(failed)
            at = torch.tensor([where[i] for i in positions], dtype=torch.long)
            if shard_scores is not None:
                scores = torch.full((len(rows), ), float('nan')) if scores is None else scores
                scores[at] = shard_scores
            for key, value in shard_inputs.items():
                if key not in inputs:
                    inputs[key] = value.new_zeros((len(rows), ) + tuple(value.shape[1:]))
                inputs[key][at] = value
        return scores, inputs, unreadable

    def _select(self, pool, candidates: List[int], rows: List[int], scores: Optional[Tensor],
                inputs: Dict[str, Tensor], unreadable: Dict[int, str], budget: int) -> AcquisitionResult:
        """Rank 0: drop unreadable rows, select, and (without a forward pass) check the picks can be read."""
        if self.scorer is not None and self.selector.uses_scores and not self.scorer.requires:
            scores = self.scorer({'num_images': len(candidates)}).float()
        labeled_rows = torch.arange(len(rows)) >= len(candidates)
        while True:
            if all(c in unreadable for c in candidates):
                first = candidates[0]
                raise UserError(f'none of the {len(candidates)} candidate pool images could be read (e.g. '
                                f'{pool.get_data_info(first).get("img_path", first)}: {unreadable[first]}); check '
                                'the pool\'s image files and paths.')
            keep = torch.tensor([i not in unreadable for i in rows], dtype=torch.bool)
            kept = keep.nonzero().squeeze(1)
            mask = labeled_rows[kept]
            count = min(budget, int((~mask).sum()))
            order = self.selector.select(count, None if scores is None else scores[kept],
                                         {k: v[kept] for k, v in inputs.items()}, mask)
            picks = [rows[int(kept[o])] for o in order]
            if self.requires:
                break
            newly = {i: err for i, err in ((i, _read_error(pool, i)) for i in picks) if err is not None}
            if not newly:
                break
            unreadable.update(newly)  # never read by the scoring pass: re-select without them
        pick_scores = None
        if scores is not None:
            where = {index: r for r, index in enumerate(rows)}
            pick_scores = [float(scores[where[i]]) for i in picks]
        return AcquisitionResult(picks=picks, scores=pick_scores, unreadable=dict(sorted(unreadable.items())),
                                 num_candidates=len(candidates))


def _read_error(pool, index: int) -> Optional[str]:
    """The read error of pool image ``index``, or None when it loads."""
    try:
        pool[index]
    except Exception as err:  # noqa: BLE001 - filtered by is_unreadable
        if not is_unreadable(err):
            raise
        return f'{type(err).__name__}: {err}'
    return None
