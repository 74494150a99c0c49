"""Selection over a pool whose rows are spread over the processes of a distributed run. Pure torch.

Each rank holds its own rows (scores, features) and never sends them whole: a distributed top-k
sends ``k`` candidates per rank, and k-center greedy keeps each rank's distance-to-nearest-centre
vector local (per pick: the local farthest row, one all-gather of two numbers per rank, one
broadcast of the new centre's feature vector). Both return exactly the picks of the one-process
algorithm on the same rows (ties go the same way).

Rows are named by their global row number (the position in the acquisition's row list), which
fixes every tie-break independently of how rows are spread.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from .base import matvec


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather_rows(tensor: Tensor) -> List[Tensor]:
    """Every rank's ``tensor`` (same dtype and trailing shape, any length), in rank order."""
    if _world() == 1:
        return [tensor]
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(_world())]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.long))
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, ) + tuple(tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.zeros_like(padded) for _ in range(_world())]
    dist.all_gather(parts, padded)
    return [p[:int(s.item())] for p, s in zip(parts, sizes)]


def sharded_top_k(keys: Tensor, ties: Tensor, ids: Tensor, k: int) -> Tensor:
    """The global row ids of the ``k`` highest ``keys`` of all ranks, highest first; equal keys go
    to the lower ``ties`` value.

    Args:
        keys: ``[n]`` float keys of this rank's rows (finite; see ``ranking_key``).
        ties: ``[n]`` int64 tie-break positions (unique over all ranks).
        ids: ``[n]`` int64 global row ids.
        k: How many.

    Returns:
        ``[min(k, total rows)]`` int64 global row ids, the same on every rank.
    """
    def best(keys: Tensor, ties: Tensor, ids: Tensor) -> tuple:
        order = torch.argsort(ties)  # by tie position, then stably by key: (key desc, tie asc)
        order = order[torch.argsort(keys[order], descending=True, stable=True)][:k]
        return keys[order], ties[order], ids[order]

    keys, ties, ids = best(keys.double(), ties.long(), ids.long())
    gathered = [all_gather_rows(t) for t in (keys, ties, ids)]
    return best(*(torch.cat(parts) for parts in gathered))[2]


def sharded_k_center(features: Tensor, ids: Tensor, labeled: Tensor, budget: int, chunk_size: int = 256) -> Tensor:
    """Greedy k-center (``k_center_greedy``) over rows spread across ranks, with the same picks.

    Args:
        features: ``[n, D]`` this rank's features.
        ids: ``[n]`` int64 global row ids of those rows.
        labeled: ``[n]`` bool: rows of labeled images (the initial centres).
        budget: How many to pick (at most the unlabeled rows of all ranks).
        chunk_size: Labeled centres per distance block.

    Returns:
        ``[budget]`` int64 global row ids in pick order, the same on every rank.
    """
    features = features.float()
    n, dim = features.shape
    sq_norms = (features * features).sum(1)
    min_dist = torch.full((n, ), torch.inf)
    # The labeled centres, every rank's in turn, a chunk at a time: the same blocks as one process.
    for centres in all_gather_rows(features[labeled]):
        for start in range(0, len(centres), chunk_size):
            chunk = centres[start:start + chunk_size]
            block = torch.addmm(sq_norms[:, None], features, chunk.T, alpha=-2)
            block += (chunk * chunk).sum(1)[None, :]
            torch.minimum(min_dist, block.amin(1), out=min_dist)
    min_dist[labeled] = -torch.inf
    num_labeled = torch.tensor([int(labeled.sum())])
    if _world() > 1:
        dist.all_reduce(num_labeled)
    if int(num_labeled) == 0:  # first pick: farthest from the pool mean
        total = torch.cat([features.sum(0).double(), torch.tensor([float(n)], dtype=torch.double)])
        if _world() > 1:
            dist.all_reduce(total)
        mean = (total[:dim] / total[dim]).float()
        first_key: Optional[Tensor] = sq_norms - 2 * matvec(features, mean)
    else:
        first_key = None
    picks = torch.empty(budget, dtype=torch.long)
    for i in range(budget):
        key = first_key if i == 0 and first_key is not None else min_dist
        winner, centre = _farthest(key, ids, features)
        picks[i] = winner
        if i == budget - 1:
            break
        mine = (ids == winner).nonzero().squeeze(1)
        if len(mine):
            min_dist[mine] = -torch.inf
        dist_to = matvec(features, centre).mul_(-2)
        dist_to += sq_norms
        dist_to += (centre * centre).sum()
        torch.minimum(min_dist, dist_to, out=min_dist)
    return picks


def _farthest(key: Tensor, ids: Tensor, features: Tensor) -> tuple:
    """The global row with the largest ``key`` (ties: the lower row id) and its feature vector."""
    if len(key):
        best = key.max()
        local = int(ids[key == best].min())
        value = float(best)
    else:
        local, value = -1, float('-inf')
    if _world() == 1:
        row = (ids == local).nonzero().squeeze(1)
        return local, features[row[0]]
    pair = torch.tensor([value, float(-local)], dtype=torch.double)  # max value, then the lower id
    pairs = [torch.zeros(2, dtype=torch.double) for _ in range(_world())]
    dist.all_gather(pairs, pair)
    ranks = sorted(range(_world()), key=lambda r: (float(pairs[r][0]), float(pairs[r][1])), reverse=True)
    owner = ranks[0]
    winner = int(-pairs[owner][1])
    centre = torch.zeros(features.shape[1])
    if dist.get_rank() == owner:
        centre = features[(ids == winner).nonzero().squeeze(1)[0]].clone()
    dist.broadcast(centre, src=owner)
    return winner, centre
