"""The acquisition pass: stream an unlabeled pool through an adapter and a scorer."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor
from tqdm import tqdm

from ..scoring.scorers import Scorer


def score_pool(adapter, scorer: Scorer, dataloader: Iterable, progress: bool = True,
               desc: str = 'acquisition') -> Tensor:
    """Score every image of ``dataloader`` in order, one batch at a time.

    Per-box and per-anchor tensors live only inside one batch; what is kept is the scorer's
    per-image result (a score, or a feature vector for core-set), moved to the CPU.

    Args:
        adapter: Callable turning a dataloader batch into the outputs ``scorer.requires``.
        scorer: The acquisition function.
        dataloader: Batches of the pool, in pool order.
        progress: Show a progress bar with images per second.
        desc: Label of the progress bar.

    Returns:
        ``[N]`` scores (``[N, D]`` features for core-set) on the CPU, in pool order.
    """
    chunks = []
    total = len(dataloader.dataset) if hasattr(dataloader, 'dataset') else None
    with tqdm(total=total, desc=desc, unit='img', disable=not progress, dynamic_ncols=True) as bar:
        for batch in dataloader:
            result = scorer(adapter(batch))
            chunks.append(result.detach().float().cpu())
            bar.update(result.shape[0])
    if not chunks:
        return torch.empty(0)
    return torch.cat(chunks)
