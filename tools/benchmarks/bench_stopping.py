"""Replay of the stopping rule on toy VOC: does the agreement of successive models track the true
mAP, and does the rule fire near the cycle where labeling stops paying off?

    python tools/benchmarks/bench_stopping.py [--seeds 3] [--jobs 1] [--cycles 8] [--work-dir DIR]

Runs configs/demo/ssd_toyvoc_demo.py (entropy, 200 iterations a cycle) from 50 labeled images, +50
per cycle, with ``active_learning.stop`` recording the agreement on a 200-image stop set (the rule
itself never ends these runs), one run per seed. Then, per run, from results.csv alone:

- the Spearman correlation of the agreement with the true test mAP over cycles 1..K;
- the *plateau*: the first cycle whose true mAP gain over the cycle before is below ``--gain`` (mAP
  points), and the cycle where the rule (``window`` 2) would fire for each ``--thresholds``: a hit
  when it fires within one cycle of the plateau.

Prints a table and ends with a JSON line.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
CONFIG = osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc_demo.py')


def run(seed: int, args: argparse.Namespace, data_root: str) -> str:
    """One AL run of a seed (resumed when it exists); returns its work dir."""
    work = osp.join(args.work_dir, f'seed{seed}')
    os.makedirs(args.work_dir, exist_ok=True)
    config = osp.join(args.work_dir, f'stop_seed{seed}.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = {CONFIG!r}\n'
                f'active_learning = dict(initial_labeled=50, budget=50, num_cycles={args.cycles}, seed={seed}, '
                f'stop=dict(threshold=1.0, window=2, stop_set=200, score_thr=0.3))\n')
    roots = [f'{loader}.dataset.data_root={data_root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                       'test_dataloader')]
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), config, '--work-dir', work, '--no-progress',
           '--cfg-options', 'log_level=WARNING', *roots]
    if osp.isfile(osp.join(work, 'al_config.json')):
        cmd.append('--resume')
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f'seed {seed} failed: {proc.stderr[-2000:]}')
    return work


def spearman(a: List[float], b: List[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(x: List[float]) -> List[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        out = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else 0.0


def fires_at(agreements: Dict[int, float], threshold: float, window: int = 2) -> Optional[int]:
    """The first cycle where ``window`` successive agreements reach ``threshold`` (the rule, replayed)."""
    from mmal.active.stopping import StopRule
    rule = StopRule(threshold=threshold, window=window)
    seen: List[Optional[float]] = []
    for cycle in sorted(agreements):
        seen.append(agreements[cycle])
        if rule.fires(seen):
            return cycle
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--cycles', type=int, default=8)
    parser.add_argument('--gain', type=float, default=1.0, help='plateau: true mAP gain below this (points)')
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.6, 0.7, 0.8])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_stopping'))
    parser.add_argument('--toy-root', default=osp.join(ROOT, 'data', 'toy_voc'))
    args = parser.parse_args()
    from mmal.datasets import generate_toy_voc
    data_root = generate_toy_voc(args.toy_root)
    with ThreadPoolExecutor(args.jobs) as pool:
        works = list(pool.map(lambda s: run(s, args, data_root), range(args.seeds)))
    results = []
    for seed, work in enumerate(works):
        with open(osp.join(work, 'results.csv')) as f:
            rows = list(csv.DictReader(f))
        mean_ap = {int(r['cycle']): 100 * float(r['value']) for r in rows if r['metric'] == 'pascal_voc/mAP'}
        agree = {int(r['cycle']): float(r['value']) for r in rows if r['metric'] == 'stop/agreement'}
        cycles = sorted(agree)
        plateau = next((k for k in sorted(mean_ap)[1:] if mean_ap[k] - mean_ap[k - 1] < args.gain), None)
        results.append(dict(seed=seed, map=mean_ap, agreement=agree, plateau=plateau,
                            spearman=spearman([agree[k] for k in cycles], [mean_ap[k] for k in cycles]),
                            fires={str(t): fires_at(agree, t) for t in args.thresholds}))
    print(f'\nstopping rule replay on toy VOC ({len(results)} seeds, {args.cycles} cycles, +50 a cycle, entropy):')
    for r in results:
        print(f'seed {r["seed"]}: mAP ' + ' '.join(f'{r["map"][k]:.1f}' for k in sorted(r['map'])) +
              ' | agreement ' + ' '.join(f'{r["agreement"][k]:.2f}' for k in sorted(r['agreement'])) +
              f' | Spearman {r["spearman"]:+.2f} | plateau (gain < {args.gain}) at cycle {r["plateau"]} | fires at ' +
              ', '.join(f'{t}: {c}' for t, c in r['fires'].items()))
    for t in args.thresholds:
        hits = sum(r['plateau'] is not None and r['fires'][str(t)] is not None and
                   abs(r['fires'][str(t)] - r['plateau']) <= 1 for r in results)
        print(f'threshold {t}: fires within one cycle of the plateau in {hits} of {len(results)} runs')
    print(json.dumps(results))


if __name__ == '__main__':
    main()
