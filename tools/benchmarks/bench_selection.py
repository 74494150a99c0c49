"""Benchmark ranking and batch selection; every comparison is measured in this one run.

    python tools/benchmarks/bench_selection.py [--quick]

1. ``top_k``: ``torch.topk`` plus a stable pass over the ties at the cut-off, against the full
   stable sort it replaces (same picks), at 1,000 of 200,000.
2. ``margin``: max, then the max with the winner masked, against ``topk(2)`` (the previous code)
   and a numpy ``partition`` (the usual peer implementation), on 200,000 x 21 and 50,000 x 10.
3. k-center greedy (N=20k, D=512, 1,000 labeled, 1,000 picks) against an sklearn-based
   implementation (``pairwise_distances`` per pick, as the Core-Set authors' code) and a
   full-distance-matrix one (as DeepAL / TorchAL's ``furthest_first``); and, at N=50k, against the
   memory-bandwidth bound (the features read once per center).
4. BADGE, TypiClust, ProbCover (N=50k, D=512, 1,000 labeled, 1,000 picks), BatchBALD (N=2,000,
   T=20, C=10, 50 picks) and PowerSampling: wall time and peak memory above their inputs.
   Targets: BADGE / TypiClust / ProbCover within 60 s and 1 GiB.

The last line is a JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
from mmal.registry import SELECTORS
from mmal.scoring import functional as F
from mmal.selection import k_center_greedy, top_k

PAGE = os.sysconf('SC_PAGE_SIZE')


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Samples the resident set size every millisecond while the ``with`` block runs."""

    def __enter__(self):
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def best_time(fn, repeats: int) -> float:
    """The best of ``repeats`` timed runs after a warm-up; ``repeats=0``: one run, no warm-up."""
    if repeats == 0:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    fn()  # warm-up
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def read_bandwidth(x: torch.Tensor, repeats: int = 20) -> float:
    """Bytes per second of the best streaming read (a sum) over ``x``."""
    return x.numel() * x.element_size() / best_time(x.sum, repeats)


# -- reference implementations (what the faster code replaces or is compared with) ----------------
def full_sort_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    return scores.argsort(descending=True, stable=True)[:k]


def topk2_margin(probs: torch.Tensor) -> torch.Tensor:
    top2 = probs.topk(2, dim=-1).values
    return 1 - (top2[..., 0] - top2[..., 1])


def numpy_partition_margin(probs: np.ndarray) -> np.ndarray:
    part = -np.partition(-probs, 1, axis=1)
    return 1 - (part[:, 0] - part[:, 1])


def sklearn_k_center(x: np.ndarray, labeled: np.ndarray, budget: int) -> list:
    """The Core-Set authors' greedy: ``pairwise_distances`` to the labeled set, then to each pick."""
    from sklearn.metrics import pairwise_distances
    min_dist = pairwise_distances(x, x[labeled]).min(axis=1)
    picks = []
    for _ in range(budget):
        new = int(np.argmax(min_dist))
        picks.append(new)
        min_dist = np.minimum(min_dist, pairwise_distances(x, x[[new]]).ravel())
    return picks


def distance_matrix_k_center(x: torch.Tensor, labeled: torch.Tensor, budget: int) -> list:
    """DeepAL / TorchAL's ``furthest_first``: the whole N x N distance matrix first."""
    sq = (x * x).sum(1)
    dist = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min_(0).sqrt_()
    min_dist = dist[:, labeled].amin(1)
    picks = []
    for _ in range(budget):
        new = int(min_dist.argmax())
        picks.append(new)
        min_dist = torch.minimum(min_dist, dist[:, new])
    return picks


def clustered(n: int, d: int, clusters: int, generator: torch.Generator) -> torch.Tensor:
    """Features with cluster structure (a Gaussian mixture), as a network's embeddings have."""
    centers = torch.randn(clusters, d, generator=generator) * 3
    return centers[torch.randint(clusters, (n, ), generator=generator)] + torch.randn(n, d, generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='small sizes (a smoke test, not the figures)')
    args = parser.parse_args()
    q = args.quick
    g = torch.Generator().manual_seed(0)
    figures = {'bench': 'selection', 'quick': q, 'threads': torch.get_num_threads()}
    repeats = 2 if q else 5

    # 1. top_k ----------------------------------------------------------------------------------------
    n, k = (20000, 100) if q else (200000, 1000)
    scores = torch.rand(n, generator=g)
    scores[torch.randperm(n, generator=g)[:n // 10]] = 0.5  # a block of ties
    assert torch.equal(top_k(scores, k), full_sort_top_k(scores, k))
    t_new, t_sort = best_time(lambda: top_k(scores, k), repeats), best_time(lambda: full_sort_top_k(scores, k), repeats)
    t_topk = best_time(lambda: torch.topk(scores, k), repeats)
    print(f'top_k {k} of {n}: {t_new * 1e3:.2f} ms; full stable sort {t_sort * 1e3:.2f} ms ({t_sort / t_new:.1f}x '
          f'slower); bare torch.topk {t_topk * 1e3:.2f} ms ({t_new / t_topk:.2f}x of it)')
    figures.update(top_k_ms=round(t_new * 1e3, 3), top_k_speedup_vs_sort=round(t_sort / t_new, 2),
                   top_k_vs_bare_topk=round(t_new / t_topk, 2))

    # 2. margin ---------------------------------------------------------------------------------------
    for rows, classes in ((20000, 21), (5000, 10)) if q else ((200000, 21), (50000, 10)):
        probs = torch.softmax(torch.randn(rows, classes, generator=g), -1)
        assert torch.allclose(F.margin(probs), topk2_margin(probs))
        t_new = best_time(lambda: F.margin(probs), repeats)
        t_old = best_time(lambda: topk2_margin(probs), repeats)
        as_numpy = probs.numpy()
        t_np = best_time(lambda: numpy_partition_margin(as_numpy), repeats)
        print(f'margin {rows}x{classes}: {t_new * 1e3:.2f} ms; topk(2) {t_old * 1e3:.2f} ms ({t_old / t_new:.1f}x '
              f'slower); numpy partition {t_np * 1e3:.2f} ms ({t_np / t_new:.1f}x slower)')
        figures[f'margin_{rows}x{classes}_speedup_vs_topk2'] = round(t_old / t_new, 2)
        figures[f'margin_{rows}x{classes}_speedup_vs_numpy'] = round(t_np / t_new, 2)

    # 3. k-center greedy ------------------------------------------------------------------------------
    n, d, labeled_n, budget = (3000, 64, 100, 100) if q else (20000, 512, 1000, 1000)
    x = torch.randn(n, d, generator=g)
    labeled = torch.randperm(n, generator=g)[:labeled_n]
    t_ours = best_time(lambda: k_center_greedy(x, labeled, budget), 1)
    t_sk = best_time(lambda: sklearn_k_center(x.numpy(), labeled.numpy(), budget), 0)
    t_dm = best_time(lambda: distance_matrix_k_center(x, labeled, budget), 0)
    print(f'k-center N={n} D={d}: {t_ours:.2f} s; sklearn-based {t_sk:.2f} s ({t_sk / t_ours:.1f}x slower); '
          f'distance matrix (DeepAL) {t_dm:.2f} s ({t_dm / t_ours:.1f}x slower)')
    figures.update(kcenter_s=round(t_ours, 3), kcenter_speedup_vs_sklearn=round(t_sk / t_ours, 2),
                   kcenter_speedup_vs_distance_matrix=round(t_dm / t_ours, 2))

    n = 3000 if q else 50000
    x = torch.randn(n, d, generator=g)
    labeled = torch.randperm(n, generator=g)[:labeled_n]
    bound = (labeled_n + budget) * x.numel() * 4 / read_bandwidth(x)
    with PeakRSS() as mem:
        t = best_time(lambda: k_center_greedy(x, labeled, budget), 0)
    print(f'k-center N={n} D={d}: {t:.2f} s against a {bound:.2f} s bandwidth bound ({t / bound:.2f}x); '
          f'peak {mem.extra_mib:.0f} MiB above the features')
    figures.update(kcenter_50k_s=round(t, 3), kcenter_ratio_to_bound=round(t / bound, 3),
                   kcenter_peak_mib=round(mem.extra_mib, 1))

    # 4. the batch-aware selectors --------------------------------------------------------------------
    features = clustered(n, d, 100, g)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[labeled] = True
    probs = torch.softmax(torch.randn(n, 10, generator=g) * 2, -1)
    ok = True
    for name, make_inputs, uses_labeled in (
            ('BADGE', lambda sel: sel.image_inputs({'probs': probs, 'last_layer_input': features, 'num_images': n}),
             False),
            ('TypiClust', lambda sel: {'features': features}, True),
            ('ProbCover', lambda sel: {'features': features}, True)):
        selector = SELECTORS.build(dict(type=name, seed=0))
        inputs = make_inputs(selector)
        rows_labeled = mask if uses_labeled else torch.zeros(n, dtype=torch.bool)
        with PeakRSS() as mem:
            t = time.perf_counter()
            picks = selector.select(budget, None, inputs, rows_labeled)
            t = time.perf_counter() - t
        assert len(set(picks.tolist())) == budget and not rows_labeled[picks].any()
        ok &= t <= 60 and mem.extra_mib <= 1024
        print(f'{name:10s} N={n} D={d} {budget} picks: {t:6.2f} s, peak {mem.extra_mib:6.0f} MiB above the inputs '
              '(targets 60 s, 1024 MiB)')
        figures[f'{name.lower()}_s'] = round(t, 2)
        figures[f'{name.lower()}_peak_mib'] = round(mem.extra_mib, 1)

    pool, samples, classes, picks_n = (300, 10, 10, 10) if q else (2000, 20, 10, 50)
    mc = torch.softmax(torch.randn(samples, pool, classes, generator=g) * 2, -1)
    selector = SELECTORS.build(dict(type='BatchBALD', seed=0))
    inputs = selector.image_inputs({'mc_probs': mc, 'num_images': pool})
    with PeakRSS() as mem:
        t = time.perf_counter()
        selector.select(picks_n, None, inputs, torch.zeros(pool, dtype=torch.bool))
        t = time.perf_counter() - t
    print(f'BatchBALD  N={pool} T={samples} C={classes} {picks_n} picks: {t:6.2f} s, peak {mem.extra_mib:6.0f} MiB')
    figures.update(batchbald_s=round(t, 2), batchbald_peak_mib=round(mem.extra_mib, 1))
    scores = torch.rand(n, generator=g)
    t = best_time(lambda: SELECTORS.build(dict(type='PowerSampling')).select(budget, scores, {},
                                                                             torch.zeros(n, dtype=torch.bool)), repeats)
    print(f'PowerSampling N={n} {budget} picks: {t * 1e3:.1f} ms')
    figures.update(power_sampling_ms=round(t * 1e3, 2), meets_targets=bool(ok))
    print(json.dumps(figures))


if __name__ == '__main__':
    main()
