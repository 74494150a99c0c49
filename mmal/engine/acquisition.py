"""The acquisition pass: stream an unlabeled pool through an adapter and a scorer."""
from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

import torch
from mmengine.dataset import pseudo_collate
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..registry import ADAPTERS
from ..scoring.scorers import Scorer


class SkipUnreadable(Dataset):
    """Wraps a dataset so that an image that cannot be loaded is skipped and reported, not fatal.

    Items become ``(index, item, None)``, or ``(index, None, error)`` when loading fails.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        try:
            return idx, self.dataset[idx], None
        except Exception as err:  # noqa: BLE001 - any unreadable or corrupt file is reported, not fatal
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


def score_pool(adapter, scorer: Scorer, dataloader: Iterable, progress: bool = True, desc: str = 'acquisition',
               failed: Optional[list] = None) -> Tensor:
    """Score every image of ``dataloader`` in order, one batch at a time.

    Per-box and per-anchor tensors live only inside one batch; what is kept is the scorer's
    per-image result (a score, or a feature vector for core-set), moved to the CPU.

    Args:
        adapter: Callable turning a dataloader batch into the outputs ``scorer.requires``.
        scorer: The acquisition function.
        dataloader: Batches of the pool, in pool order: plain batches, or those of :func:`pool_loader`.
        progress: Show a progress bar with images per second.
        desc: Label of the progress bar.
        failed: With :func:`pool_loader` batches, ``(position, error)`` of each unreadable image is
            appended here; its row of the result is NaN.

    Returns:
        ``[N]`` scores (``[N, D]`` features for core-set) on the CPU, in pool order.
    """
    rows: List[Tuple[List[int], Tensor]] = []
    total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') else None
    seen = 0
    with tqdm(total=total, desc=desc, unit='img', disable=not progress, dynamic_ncols=True) as bar:
        for batch in dataloader:
            if 'indices' in batch:  # pool_loader's batches
                if failed is not None:
                    failed.extend(batch['failed'])
                count = len(batch['indices']) + len(batch['failed'])
                if batch['data'] is not None:
                    rows.append((batch['indices'], scorer(adapter(batch['data'])).detach().float().cpu()))
            else:
                result = scorer(adapter(batch)).detach().float().cpu()
                count = result.shape[0]
                rows.append((list(range(seen, seen + count)), result))
            seen += count
            bar.update(count)
    if not rows:
        return torch.full((seen, ), float('nan'))
    out = torch.full((seen, ) + tuple(rows[0][1].shape[1:]), float('nan'))
    for positions, values in rows:
        out[positions] = values
    return out


def build_adapter(model, requires, cfg: Optional[dict] = None):
    """The adapter (``mmal.registry.ADAPTERS``) that feeds ``model``'s outputs to a scorer.

    Args:
        model: The trained model (unwrapped).
        requires: The scorer's ``requires``.
        cfg: Adapter options; ``type`` defaults to the model's ``default_adapter`` (classifiers:
            ``ClassificationAdapter``) or ``DetectionAdapter``.
    """
    cfg = dict(cfg or {})
    cfg.setdefault('type', getattr(model, 'default_adapter', 'DetectionAdapter'))
    return ADAPTERS.build(cfg, default_args=dict(model=model, requires=requires))
