"""Cold start with label-free features: random, entropy, TypiClust on model features, TypiClust on
self-supervised features, and two switches, on the toy CIFAR-10 (small and medium start) and on a
real image set, the UCI handwritten digits that scikit-learn ships (1,797 8x8 scans; no download).

    python tools/benchmarks/bench_coldstart.py [--work-dir work/coldstart] [--settings toy-small toy-medium digits]
                                               [--methods random entropy ...] [--jobs 1]

Every (setting, method) is one AL run of 3 trials (``configs/demo/resnet_toycifar_coldstart_<method>.py``,
the settings' data and starts as ``--cfg-options``), resumed when its work dir exists. The digits are
upscaled to 32x32 and written in the CIFAR-10 pickle layout (first 1,347 scans the pool, the last 450
the test set); their training pipeline has no horizontal flip (a mirrored digit is another glyph).
Prints, per setting, accuracy (mean ± std over trials) per labeled count, each method's mean gain
over random in cycles 1-3 and its worst cycle against random, what the switches did per cycle, and
the self-supervised pretraining's CPU cost per 1k images; ends with a JSON line.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import os.path as osp
import pickle
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
METHODS = ('random', 'entropy', 'typiclust', 'typiclust_ssl', 'switch_ssl', 'switch_default')
SETTINGS = ('toy-small', 'toy-medium', 'digits')
#: The digits' training pipeline: the toy CIFAR one without its horizontal flip.
NO_FLIP = ("train_dataloader = dict(dataset=dict(pipeline=[dict(type='RandomCropPad', size=32, padding=4), "
           "dict(type='PackClsInputs')]))\n")


def write_digits(root: str) -> str:
    """scikit-learn's digits in the CIFAR-10 pickle layout under ``root`` (written once)."""
    import cv2
    import numpy as np
    from sklearn.datasets import load_digits
    folder = osp.join(root, 'cifar-10-batches-py')
    if osp.isfile(osp.join(folder, 'test_batch')):
        return root
    os.makedirs(folder, exist_ok=True)
    digits = load_digits()
    images = np.stack([cv2.resize((img * 255 / 16).astype(np.uint8), (32, 32), interpolation=cv2.INTER_LINEAR)
                       for img in digits.images])
    planes = np.repeat(images[:, None], 3, axis=1).reshape(len(images), -1)  # grey in the R, G, B planes
    labels = digits.target.tolist()

    def dump(name: str, rows: slice) -> None:
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump({b'data': planes[rows], b'labels': labels[rows]}, f)

    for k in range(5):  # the pool: 1,347 scans over the five training batches
        dump(f'data_batch_{k + 1}', slice(k * 270, min((k + 1) * 270, 1347)))
    dump('test_batch', slice(1347, None))
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({b'label_names': [str(d).encode() for d in range(10)]}, f)
    return root


def options(setting: str, args: argparse.Namespace) -> List[str]:
    """``--cfg-options`` of a setting."""
    if setting == 'toy-small':
        roots, start = args.toy_root, []
    elif setting == 'toy-medium':
        roots, start = args.toy_root, ['active_learning.initial_labeled=100', 'active_learning.budget=50']
    else:
        roots = write_digits(osp.join(args.work_dir, 'digits'))
        start = ['active_learning.initial_labeled=30', 'active_learning.budget=30']
    return [f'train_dataloader.dataset.data_root={roots}', f'test_dataloader.dataset.data_root={roots}', *start]


def run(setting: str, method: str, args: argparse.Namespace) -> str:
    """One AL run (resumed when its work dir exists); returns the work dir."""
    work = osp.join(args.work_dir, setting, method)
    config = osp.join(ROOT, 'configs', 'demo', f'resnet_toycifar_coldstart_{method}.py')
    if setting == 'digits':  # the same method without the flip
        os.makedirs(args.work_dir, exist_ok=True)
        wrapped = osp.join(args.work_dir, f'digits_{method}.py')
        with open(wrapped, 'w') as f:
            f.write(f'_base_ = {config!r}\n{NO_FLIP}')
        config = wrapped
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), config, '--work-dir', work, '--no-progress',
           '--cfg-options', 'log_level=WARNING', *options(setting, args)]
    if osp.isfile(osp.join(work, 'al_config.json')):
        cmd.append('--resume')
    threads = str(max(1, (os.cpu_count() or 1) // args.jobs))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=threads))
    if proc.returncode != 0:
        raise SystemExit(f'{setting} {method} failed: {proc.stderr[-2000:]}')
    return work


def accuracy(work: str) -> Dict[int, List[float]]:
    """``{num_labeled: [accuracy of each trial]}`` from results.csv."""
    out: Dict[int, List[float]] = {}
    with open(osp.join(work, 'results.csv')) as f:
        for row in csv.DictReader(f):
            if row['metric'] == 'accuracy/top1':
                out.setdefault(int(row['num_labeled']), []).append(float(row['value']))
    return out


def acquisitions(work: str) -> Dict[int, List[Tuple[str, object]]]:
    """``{num_labeled: [(acting selector, coverage) per trial]}`` and the features' cost, from selected.json."""
    out: Dict[int, List[Tuple[str, object]]] = {}
    for path in sorted(glob.glob(osp.join(work, 'trial_*', 'cycle_*', 'selected.json'))):
        with open(path) as f:
            record = json.load(f)
        out.setdefault(int(record['num_labeled']), []).append((record['acted_by'], record.get('coverage')))
    return out


def pretraining_cost(work: str) -> Tuple[float, int]:
    """CPU seconds of the self-supervised features and the pool size, from the first record and config."""
    for path in sorted(glob.glob(osp.join(work, 'trial_*', 'cycle_*', 'selected.json'))):
        with open(path) as f:
            record = json.load(f)
        if record.get('features'):
            return float(record['features']['seconds']), int(record['num_candidates']) + int(record['num_labeled'])
    return 0.0, 0


def fmt(values: List[float]) -> str:
    return f'{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}'


def report(setting: str, works: Dict[str, str]) -> Dict[str, object]:
    """Print the setting's tables; return its summary."""
    acc = {m: accuracy(w) for m, w in works.items()}
    counts = sorted(next(iter(acc.values())))
    methods = list(works)
    print(f'\n### {setting}\n')
    print('| # labeled | ' + ' | '.join(methods) + ' |')
    print('|---:|' + '---:|' * len(methods))
    for n in counts:
        print(f'| {n} | ' + ' | '.join(fmt(acc[m][n]) if n in acc[m] else '' for m in methods) + ' |')
    summary: Dict[str, object] = {}
    if 'random' in acc:
        gains = {m: [statistics.mean(acc[m][n]) - statistics.mean(acc['random'][n]) for n in counts[1:4]]
                 for m in methods if m != 'random'}
        later = {m: [statistics.mean(acc[m][n]) - statistics.mean(acc['random'][n]) for n in counts[1:]]
                 for m in methods if m != 'random'}
        print('| gain over random, cycles 1-3 | | ' + ' | '.join(f'{statistics.mean(gains[m]):+.2f}'
                                                          for m in methods[1:]) + ' |')
        print('| worst cycle against random | | ' + ' | '.join(f'{min(later[m]):+.2f}' for m in methods[1:]) + ' |')
        summary = {m: dict(gain_1_3=round(statistics.mean(gains[m]), 2), worst=round(min(later[m]), 2))
                   for m in gains}
    for m in methods:
        if m.startswith('switch'):
            acts = acquisitions(works[m])
            said = '; '.join(f'{n}: ' + ', '.join(a if c is None else f'{a} ({c:.2f})' for a, c in acts[n])
                             for n in sorted(acts))
            print(f'\n{m} acted (coverage): {said}')
    for m in methods:
        seconds, size = pretraining_cost(works[m])
        if size:
            print(f'\nself-supervised features ({m}): {seconds:.0f} CPU s for {size} images = '
                  f'{seconds / 60 / size * 1000:.1f} CPU-min per 1k images')
            summary['pretraining_cpu_min_per_1k'] = round(seconds / 60 / size * 1000, 2)
            break
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work', 'coldstart'))
    parser.add_argument('--toy-root', default=osp.join(ROOT, 'data', 'toy_cifar10'))
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time')
    args = parser.parse_args()
    if not osp.isdir(osp.join(args.toy_root, 'cifar-10-batches-py')):
        from mmal.datasets.toy_cls import main as write_toy
        write_toy([args.toy_root])  # the demo's set: 1,000 pool images, 400 test
    # the self-supervised features first, one run per setting, so parallel runs read them from the cache
    ssl_first = [m for m in args.methods if m == 'typiclust_ssl'][:1]
    for setting in args.settings:
        for method in ssl_first:
            run(setting, method, args)
    jobs = [(s, m) for s in args.settings for m in args.methods]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = list(pool.map(lambda job: run(*job, args), jobs))
    works: Dict[str, Dict[str, str]] = {}
    for (setting, method), work in zip(jobs, done):
        works.setdefault(setting, {})[method] = work
    summary = {setting: report(setting, runs) for setting, runs in works.items()}
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
