"""Neighbourhoods of feature rows, exact or approximate. Pure torch, faiss optional.

Two queries serve the coverage selectors: the ``k`` nearest other rows of every row
(:func:`knn_sq_distances`, TypiClust's typicality) and every row within a radius
(:func:`radius_graph`, ProbCover's δ-balls). Both are exact by default on small inputs: chunked
``|x|² - 2 x·y + |y|²`` blocks, at most ``chunk`` rows high. From :data:`ANN_MIN_ROWS` rows on,
when ``faiss-cpu`` is installed (``pip install faiss-cpu``, or the ``ann`` extra of mmal), they run
on a faiss inverted-file index (``IndexIVFFlat``: about ``4 sqrt(N)`` k-means cells, ``nprobe`` of
them scanned per query), which reads a few cells per query instead of every row. The answer is then
approximate: a neighbour in an unscanned cell is missed, never a non-neighbour returned.
``tools/benchmarks/bench_scale.py`` prints the recall against the exact answer.

``search`` chooses: ``'auto'`` (faiss when installed and the rows are many), ``'exact'`` or
``'faiss'`` (an error naming the fix when faiss is not installed).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

#: The values of ``search``.
SEARCH_MODES = ('auto', 'exact', 'faiss')
#: From this many rows on, ``search='auto'`` uses faiss when it is installed.
ANN_MIN_ROWS = 20_000


def _faiss() -> Any:
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def check_search(search: str) -> str:
    """``search`` when it is one of :data:`SEARCH_MODES` (a ValueError naming them otherwise)."""
    if search not in SEARCH_MODES:
        raise ValueError(f'search must be one of {", ".join(SEARCH_MODES)}, got {search!r}.')
    if search == 'faiss' and _faiss() is None:
        raise ValueError("search='faiss' needs faiss-cpu, which is not installed: pip install faiss-cpu, "
                         "or set search='exact'.")
    return search


def uses_faiss(search: str, num_rows: int) -> bool:
    """Whether a query over ``num_rows`` rows runs on faiss under ``search``."""
    check_search(search)
    return search == 'faiss' or (search == 'auto' and num_rows >= ANN_MIN_ROWS and _faiss() is not None)


def ivf_index(x: Tensor, nprobe: int, seed: int = 0) -> Any:
    """A faiss ``IndexIVFFlat`` over the rows of ``x`` (L2), trained on them with ``seed``.

    Args:
        x: ``[N, D]`` points.
        nprobe: Cells scanned per query (clipped to the number of cells).
        seed: Seed of faiss's k-means of the cells.

    Returns:
        The filled index; faiss runs on ``torch.get_num_threads()`` threads.
    """
    faiss = _faiss()
    faiss.omp_set_num_threads(torch.get_num_threads())
    data = x.detach().float().cpu().contiguous().numpy()
    num, dim = data.shape
    cells = max(1, min(int(4 * math.sqrt(num)), num // 39))  # faiss warns below 39 training points per cell
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, cells)
    index.cp.seed = seed
    index.train(data)
    index.add(data)
    index.nprobe = min(nprobe, cells)
    return index


def knn_sq_distances(x: Tensor, k: int, search: str = 'auto', nprobe: int = 32, seed: int = 0,
                     chunk: int = 2048) -> Tensor:
    """Squared distances from each row of ``x`` to its ``k`` nearest other rows, ascending.

    Args:
        x: ``[n, D]`` points, ``n > k``.
        k: Neighbours (at least 1).
        search: ``'auto'``, ``'exact'`` or ``'faiss'``.
        nprobe: Cells scanned per query on faiss.
        seed: Seed of the faiss index's cells.
        chunk: Rows per exact distance block.

    Returns:
        ``[n, k]`` squared distances; on faiss a missed neighbour makes a distance larger (an
        approximate neighbour list has fewer than ``k`` rows only when a query's cells hold fewer:
        the missing ones are filled with the largest distance found).
    """
    n = x.shape[0]
    if uses_faiss(search, n):
        index = ivf_index(x, nprobe, seed)
        dist, ids = index.search(x.detach().float().cpu().contiguous().numpy(), k + 1)
        dist, ids = torch.from_numpy(dist), torch.from_numpy(ids)
        self_hit = ids == torch.arange(n)[:, None]
        dist[self_hit | (ids < 0)] = torch.inf
        dist = dist.sort(1).values[:, :k]  # the row itself dropped (or the farthest when it was not found)
        finite = torch.isfinite(dist)
        largest = torch.where(finite, dist, torch.zeros_like(dist)).amax(1, keepdim=True)
        return torch.where(finite, dist, largest).clamp_min_(0).to(x.dtype).to(x.device)
    sq = (x * x).sum(1)
    out = torch.empty(n, k, dtype=x.dtype, device=x.device)
    for start in range(0, n, chunk):
        d = torch.addmm(sq[None, :], x[start:start + chunk], x.T, alpha=-2)
        d += sq[start:start + chunk, None]
        d.clamp_min_(0)
        rows = torch.arange(d.shape[0], device=x.device)
        d[rows, rows + start] = torch.inf  # not its own neighbour
        out[start:start + chunk] = d.topk(k, dim=1, largest=False).values
    return out


def radius_graph(x: Tensor, delta: float, search: str = 'auto', nprobe: int = 32, seed: int = 0,
                 chunk: int = 1024) -> Tuple[Tensor, Tensor]:
    """The δ-ball graph in CSR form: row ``i`` lists every ``j`` with ``|x_i - x_j| < delta``.

    Args:
        x: ``[N, D]`` points.
        delta: Ball radius.
        search: ``'auto'``, ``'exact'`` or ``'faiss'``.
        nprobe: Cells scanned per query on faiss.
        seed: Seed of the faiss index's cells.
        chunk: Query rows per block (an exact ``[chunk, N]`` distance block is the largest temporary).

    Returns:
        ``(indptr [N + 1] int64, indices [E] int32)``, each row's columns ascending; the graph is
        symmetric and holds every self-loop (on faiss: an edge found from either end is kept).
    """
    num = x.shape[0]
    if uses_faiss(search, num):
        return _faiss_radius_graph(x, delta, nprobe, seed, chunk)
    sq = (x * x).sum(1)
    threshold = delta * delta
    counts, columns = [], []
    for start in range(0, num, chunk):
        d = torch.addmm(sq[None, :], x[start:start + chunk], x.T, alpha=-2)
        d += sq[start:start + chunk, None]
        in_chunk = torch.arange(d.shape[0], device=x.device)
        d[in_chunk, in_chunk + start] = -1  # a point is in its own ball, whatever the rounding
        inside = d < threshold
        del d
        counts.append(inside.sum(1))
        columns.append(inside.nonzero()[:, 1].to(torch.int32))  # row-major: each row's columns in order
    indptr = torch.zeros(num + 1, dtype=torch.long, device=x.device)
    indptr[1:] = torch.cat(counts).cumsum(0)
    return indptr, torch.cat(columns)


def _faiss_radius_graph(x: Tensor, delta: float, nprobe: int, seed: int, chunk: int) -> Tuple[Tensor, Tensor]:
    """:func:`radius_graph` on an IVF index: range search per block, then made symmetric (``i -> j``
    found from ``i`` or ``j``) with self-loops, as sorted ``row * N + column`` keys."""
    num = x.shape[0]
    index = ivf_index(x, nprobe, seed)
    data = x.detach().float().cpu().contiguous().numpy()
    keys = [torch.arange(num, dtype=torch.long) * (num + 1)]  # the self-loops
    for start in range(0, num, chunk):
        lims, _, ids = index.range_search(data[start:start + chunk], delta * delta)
        lims, ids = torch.from_numpy(lims).long(), torch.from_numpy(ids).long()
        rows = torch.repeat_interleave(torch.arange(start, start + len(lims) - 1), lims[1:] - lims[:-1])
        keys += [rows * num + ids, ids * num + rows]
    key = torch.cat(keys).unique()  # sorted: row-major, each row's columns ascending
    del keys
    rows = torch.div(key, num, rounding_mode='floor')
    indices = (key - rows * num).to(torch.int32)
    indptr = torch.zeros(num + 1, dtype=torch.long)
    indptr[1:] = torch.bincount(rows, minlength=num).cumsum(0)
    return indptr.to(x.device), indices.to(x.device)


def block_rows(num: int, elements: int = 2 ** 26) -> int:
    """Rows of a ``[rows, num]`` distance block of at most ``elements`` entries (256 MiB in fp32)."""
    return max(1, elements // max(num, 1))


def estimate_edges(x: Tensor, delta: float, sample_size: int = 1000,
                   generator: Optional[torch.Generator] = None) -> float:
    """The expected edge count of :func:`radius_graph` (self-loops included), from the exact ball
    sizes of ``sample_size`` random rows.

    Args:
        x: ``[N, D]`` points.
        delta: Ball radius.
        sample_size: Rows whose balls are counted.
        generator: Seeded CPU generator of the sample.

    Returns:
        ``N`` times the mean sampled ball size.
    """
    num = x.shape[0]
    sample = torch.randperm(num, generator=generator)[:sample_size].to(x.device)
    sq = (x * x).sum(1)
    sizes = []
    for start in range(0, sample.numel(), block_rows(num)):
        rows = sample[start:start + block_rows(num)]
        d = torch.addmm(sq[None, :], x[rows], x.T, alpha=-2)
        d += sq[rows, None]
        sizes.append((d < delta * delta).sum(1))
    return float(torch.cat(sizes).double().mean().clamp_min(1)) * num
