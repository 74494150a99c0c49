"""Replay of the stopping rule on toy VOC or toy CIFAR: does the agreement of successive models track
the true mAP / accuracy, and does the rule fire near the cycle where labeling stops paying off? With
``--control``, also: does the control share's interval cover the model's test score, and what does
the share cost?

    python tools/benchmarks/bench_stopping.py [--task voc|cifar] [--seeds 3] [--jobs 1] [--cycles 8]
                                              [--control 0 0.2] [--work-dir DIR]

``voc``: configs/demo/ssd_toyvoc_demo.py (entropy, 200 iterations a cycle) from 50 labeled images, +50
per cycle. ``cifar``: configs/demo/resnet_toycifar_al.py (entropy, 15 epochs a cycle) from 100, +50.
Both with ``active_learning.stop`` recording the agreement on a 200-image stop set (the rule itself
never ends these runs), one run per seed and control share. Then, per run, from results.csv alone:

- the Spearman correlation of the agreement with the true test mAP over cycles 1..K;
- the *plateau*: the first cycle whose true mAP gain over the cycle before is below ``--gain`` (mAP
  points), and the cycle where the rule (``window`` 2) would fire for each ``--thresholds``: a hit
  when it fires within one cycle of the plateau;
- with a control share: in how many cycles the control's 95 % interval covers the same model's score
  on the test set, and the last cycle's score against the run of the same seed without a share.

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
TASKS = {  # config, initial labeled, the metric (as results.csv names it), its scale to points
    'voc': (osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc_demo.py'), 50, 'pascal_voc/mAP', 100.0),
    'cifar': (osp.join(ROOT, 'configs', 'demo', 'resnet_toycifar_al.py'), 100, 'accuracy/top1', 1.0),
}


def run(seed: int, control: float, args: argparse.Namespace, data_root: str) -> str:
    """One AL run of a seed and control share (resumed when it exists); returns its work dir."""
    config_file, initial, _, _ = TASKS[args.task]
    name = f'seed{seed}' if args.task == 'voc' and not control else f'{args.task}_seed{seed}_control{control:g}'
    work = osp.join(args.work_dir, name)
    os.makedirs(args.work_dir, exist_ok=True)
    config = osp.join(args.work_dir, f'stop_{name}.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = {config_file!r}\n'
                f'active_learning = dict(initial_labeled={initial}, budget=50, num_cycles={args.cycles}, '
                f'seed={seed}, num_trials=1, control_fraction={control}, '
                f'stop=dict(threshold=1.0, window=2, stop_set=200, score_thr=0.3))\n')
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader') if args.task == 'voc' else (
        'train_dataloader', 'test_dataloader')
    roots = [f'{loader}.dataset.data_root={data_root}' for loader in loaders]
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), config, '--work-dir', work, '--no-progress',
           '--cfg-options', 'log_level=WARNING', *roots]
    if osp.isfile(osp.join(work, 'al_config.json')):
        cmd.append('--resume')
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f'{name} failed: {proc.stderr[-2000:]}')
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
    parser.add_argument('--task', choices=sorted(TASKS), default='voc')
    parser.add_argument('--control', type=float, nargs='+', default=[0.0],
                        help='control shares to run (each seed once per share)')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--cycles', type=int, default=8)
    parser.add_argument('--gain', type=float, default=1.0, help='plateau: true mAP gain below this (points)')
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.6, 0.7, 0.8])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_stopping'))
    parser.add_argument('--toy-root', help='toy data (default data/toy_voc or data/toy_cifar10, written if missing)')
    args = parser.parse_args()
    if args.task == 'voc':
        from mmal.datasets import generate_toy_voc
        data_root = generate_toy_voc(args.toy_root or osp.join(ROOT, 'data', 'toy_voc'))
    else:
        data_root = args.toy_root or osp.join(ROOT, 'data', 'toy_cifar10')
        if not osp.isdir(osp.join(data_root, 'cifar-10-batches-py')):
            from mmal.datasets.toy_cls import main as write_toy
            write_toy([data_root])
    jobs = [(seed, control) for control in args.control for seed in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        works = list(pool.map(lambda job: run(*job, args, data_root), jobs))
    _, _, metric, scale = TASKS[args.task]
    results = []
    for (seed, control), work in zip(jobs, works):
        with open(osp.join(work, 'results.csv')) as f:
            rows = list(csv.DictReader(f))
        mean_ap = {int(r['cycle']): scale * float(r['value']) for r in rows if r['metric'] == metric}
        agree = {int(r['cycle']): float(r['value']) for r in rows if r['metric'] == 'stop/agreement'}
        cycles = sorted(agree)
        plateau = next((k for k in sorted(mean_ap)[1:] if mean_ap[k] - mean_ap[k - 1] < args.gain), None)
        estimate = {name: {int(r['cycle']): 100 * float(r['value']) for r in rows if r['metric'] == f'control/{name}'}
                    for name in ('accuracy', 'accuracy_low', 'accuracy_high', 'mAP', 'mAP_low', 'mAP_high')}
        measure = 'mAP' if args.task == 'voc' else 'accuracy'
        covered = [estimate[f'{measure}_low'][k] <= mean_ap[k] <= estimate[f'{measure}_high'][k]
                   for k in sorted(estimate[measure]) if k in mean_ap]
        results.append(dict(seed=seed, control=control, covered=covered, map=mean_ap, agreement=agree,
                            plateau=plateau,
                            spearman=spearman([agree[k] for k in cycles], [mean_ap[k] for k in cycles]),
                            fires={str(t): fires_at(agree, t) for t in args.thresholds}))
    print(f'\nstopping rule replay on toy {args.task.upper()} ({args.seeds} seeds, {args.cycles} cycles, +50 a cycle, '
          f'entropy; score: {metric}):')
    for r in results:
        print(f'seed {r["seed"]}, control {r["control"]:g}: score '
              + ' '.join(f'{r["map"][k]:.1f}' for k in sorted(r['map'])) +
              ' | agreement ' + ' '.join(f'{r["agreement"][k]:.2f}' for k in sorted(r['agreement'])) +
              f' | Spearman {r["spearman"]:+.2f} | plateau (gain < {args.gain}) at cycle {r["plateau"]} | fires at ' +
              ', '.join(f'{t}: {c}' for t, c in r['fires'].items()))
    for t in args.thresholds:
        hits = sum(r['plateau'] is not None and r['fires'][str(t)] is not None and
                   abs(r['fires'][str(t)] - r['plateau']) <= 1 for r in results)
        print(f'threshold {t}: fires within one cycle of the plateau in {hits} of {len(results)} runs')
    for r in results:
        if r['covered']:
            print(f'seed {r["seed"]}, control {r["control"]:g}: the control interval covers the test score in '
                  f'{sum(r["covered"])} of {len(r["covered"])} cycles')
    finals = {(r['seed'], r['control']): r['map'][max(r['map'])] for r in results}
    for r in results:
        if r['control'] and (r['seed'], 0.0) in finals:
            print(f'seed {r["seed"]}: last cycle {finals[r["seed"], r["control"]]:.1f} with a {r["control"]:g} control '
                  f'share, {finals[r["seed"], 0.0]:.1f} without')
    print(json.dumps(results))


if __name__ == '__main__':
    main()
