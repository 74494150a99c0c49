"""Benchmark k-center greedy against the memory-bandwidth lower bound, measured in one run.

    python tools/benchmarks/bench_selection.py [--n 50000] [--d 512] [--labeled 1000] [--budget 1000]

The bound: the features (N·D·4 bytes) read once per labeled point and once per pick, at the
bandwidth of a plain streaming read of the same tensor measured here, now. Peak memory is the
largest resident-set growth seen while the selection runs, above the features already in memory.
The last line is a JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
from mmal.selection import k_center_greedy  # noqa: E402

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


def read_bandwidth(x: torch.Tensor, repeats: int = 20) -> float:
    """Bytes per second of the best streaming read (a sum) over ``x``."""
    x.sum()
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * x.element_size() / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n', type=int, default=50000)
    parser.add_argument('--d', type=int, default=512)
    parser.add_argument('--labeled', type=int, default=1000)
    parser.add_argument('--budget', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=3, help='timed runs; the median is reported')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    features = torch.randn(args.n, args.d, generator=g).to(args.device)
    labeled = torch.randperm(args.n, generator=g)[:args.labeled]
    feature_bytes = features.numel() * features.element_size()

    bandwidth = read_bandwidth(features)
    bound_s = (args.labeled + args.budget) * feature_bytes / bandwidth
    times, peak_extra = [], 0
    for _ in range(args.repeats):
        with PeakRSS() as mem:
            t = time.perf_counter()
            picks = k_center_greedy(features, labeled, args.budget)
            if picks.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        peak_extra = max(peak_extra, mem.peak - mem.start)
    wall_s = sorted(times)[len(times) // 2]

    picked = set(picks.tolist())
    assert len(picked) == args.budget and not picked & set(labeled.tolist())
    ratio = wall_s / bound_s
    print(f'k-center greedy N={args.n} D={args.d} labeled={args.labeled} budget={args.budget} ({args.device})')
    print(f'  features            {feature_bytes / 2**20:9.1f} MiB')
    print(f'  read bandwidth      {bandwidth / 1e9:9.2f} GB/s (best streaming read, this run)')
    print(f'  bandwidth bound     {bound_s:9.3f} s  ({args.labeled + args.budget} reads of the features)')
    print(f'  k-center greedy     {wall_s:9.3f} s  (median of {args.repeats}: '
          + ', '.join(f'{t:.3f}' for t in times) + ')')
    print(f'  ratio to bound      {ratio:9.2f} x  (target <= 1.5)')
    print(f'  peak memory growth  {peak_extra / 2**20:9.1f} MiB above the features (target < 1024)')
    print(json.dumps({
        'bench': 'k_center_greedy', 'n': args.n, 'd': args.d, 'labeled': args.labeled, 'budget': args.budget,
        'device': args.device, 'bandwidth_gb_s': round(bandwidth / 1e9, 2), 'bound_s': round(bound_s, 4),
        'wall_s': round(wall_s, 4), 'ratio_to_bound': round(ratio, 3),
        'peak_mem_above_features_mib': round(peak_extra / 2**20, 1),
        'meets_targets': bool(ratio <= 1.5 and peak_extra < 2**30)
    }))


if __name__ == '__main__':
    main()
