"""Replay of the stopping rule on toy VOC or toy CIFAR: does the agreement of successive models track
the true mAP / accuracy, and does the rule fire near the cycle where labeling stops paying off? With
``--control``, also: does the control share's interval cover the model's test score, and what does
the share cost?

    python tools/benchmarks/bench_stopping.py [--task voc|cifar] [--seeds 3] [--jobs 1] [--cycles 8]
                                              [--control 0 0.2] [--gain-estimate] [--work-dir DIR]

``voc``: configs/demo/ssd_toyvoc_demo.py (entropy, 200 iterations a cycle) from 50 labeled images, +50
per cycle. ``cifar``: configs/demo/resnet_toycifar_al.py (entropy, 15 epochs a cycle) from 100, +50.
Both with ``active_learning.stop`` recording the agreement on a 200-image stop set (the rule itself
never ends these runs), one run per seed and control share. Then, per run, from results.csv alone:

- the Spearman correlation of the agreement with the true test mAP over cycles 1..K;
- the *plateau*: the first cycle whose true mAP gain over the cycle before is below ``--gain`` (mAP
  points), and the cycle where the rule (``window`` 2) would fire for each ``--thresholds``: a hit
  when it fires within one cycle of the plateau;
- with a control share: in how many cycles the control's 95 % interval, and that of the pool estimate
  (picks and control weighted by their inclusion probabilities), cover the same model's score on the
  test set, and the last cycle's score against the run of the same seed without a share;
- with ``--gain-estimate`` (the runs with a share estimate each batch's gain over random with shadow
  models, and a random run of each seed is added): in how many cycles the gain's 95 % interval covers
  the same shadows' gain on the test set, and the gain of the entropy run over the random run of the
  same seed at that cycle (a different quantity: the gain of the whole history, not of one batch).

A run whose ``results.csv`` already holds the cycles asked for is reused as it is (e.g. an 8-cycle
run for ``--cycles 6``); only cycles below ``--cycles`` are read.

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
from typing import Any, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
TASKS = {  # config, initial labeled, the metric (as results.csv names it), its scale to points
    'voc': (osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc_demo.py'), 50, 'pascal_voc/mAP', 100.0),
    'cifar': (osp.join(ROOT, 'configs', 'demo', 'resnet_toycifar_al.py'), 100, 'accuracy/top1', 1.0),
}


def run(seed: int, control: float, args: argparse.Namespace, data_root: str, random: bool = False) -> str:
    """One AL run of a seed and control share, or a random run (resumed when it exists); returns its
    work dir."""
    config_file, initial, metric, _ = TASKS[args.task]
    name = f'seed{seed}' if args.task == 'voc' and not control else f'{args.task}_seed{seed}_control{control:g}'
    gain = bool(args.gain_estimate and control)
    name = f'{args.task}_seed{seed}_random' if random else name + ('_gain' if gain else '')
    work = osp.join(args.work_dir, name)
    if len(read_results(work, metric, args.cycles)) == args.cycles:
        return work
    os.makedirs(args.work_dir, exist_ok=True)
    config = osp.join(args.work_dir, f'stop_{name}.py')
    method = ", scorer=dict(type='Random')" if random else ''
    with open(config, 'w') as f:
        f.write(f'_base_ = {config_file!r}\n'
                f'active_learning = dict(initial_labeled={initial}, budget=50, num_cycles={args.cycles}, '
                f'seed={seed}, num_trials=1, control_fraction={control}, gain_estimate={gain}{method}, '
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


def read_results(work: str, metric: str, cycles: int) -> Dict[int, Dict[str, float]]:
    """``{cycle: {metric: value}}`` of a run's ``results.csv`` (cycles below ``cycles`` that hold ``metric``)."""
    if not osp.isfile(osp.join(work, 'results.csv')):
        return {}
    out: Dict[int, Dict[str, float]] = {}
    with open(osp.join(work, 'results.csv')) as f:
        for r in csv.DictReader(f):
            if int(r['cycle']) < cycles:
                out.setdefault(int(r['cycle']), {})[r['metric']] = float(r['value'])
    return {k: v for k, v in out.items() if metric in v}


def shadow_gain(work: str, cycle: int, metric: str) -> Optional[float]:
    """The picked shadow's test score minus the random shadow's at ``cycle`` (None without shadows)."""
    scores = []
    for name in ('picked', 'random'):
        path = osp.join(work, 'trial_0', f'cycle_{cycle}', 'gain', name, 'metrics.json')
        if not osp.isfile(path):
            return None
        with open(path) as f:
            scores.append(json.load(f)['metrics'][metric])
    return scores[0] - scores[1]


def pool_truth(work: str, config: str, data_root: str, task: str, cycles: int) -> Dict[str, Dict[int, float]]:
    """What the estimates aim at, measured on the whole unlabeled pool of each cycle with the true
    labels: the picking model's score (``model``) and the shadows' gain (``gain``), in points; and the
    estimates themselves (``estimates``: ``control/*`` and ``gain/*``) recomputed from the run's saved
    models and batches by the code as it is now, so that a change of an interval is measured without
    training again. Cached in ``<work>/pool_truth.json``."""
    cache = osp.join(work, 'pool_truth.json')
    if osp.isfile(cache):
        with open(cache) as f:
            return {k: {int(c): v for c, v in d.items()} for k, d in json.load(f).items()}
    from mmdet.utils import register_all_modules

    from mmal.active.control import control_metrics
    from mmal.active.loop import ActiveLearningLoop
    from mmal.checkpoint import build_model
    from mmal.cli import load_config
    from mmal.datasets.errors import build_dataset
    from mmal.engine.acquisition import predict_boxes, predict_classes
    from mmal.scoring.agreement import detection_agreement
    from mmal.scoring.estimate import labels_as_detections
    register_all_modules()
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader') if task == 'voc' else (
        'train_dataloader', 'test_dataloader')
    cfg = load_config(config, {f'{loader}.dataset.data_root': data_root for loader in loaders})
    loop = ActiveLearningLoop(cfg, work, progress=False)
    loop.pool = build_dataset(loop.pool_cfg)
    pool, scoring = loop.pool, loop.scoring_pool()
    num_classes = len(pool.metainfo['classes'])

    def score(path: str, indices: List[int]) -> float:
        model = build_model(cfg, path)
        if task == 'voc':
            found = predict_boxes(model, scoring, 0.0, 8, indices)
            kept = {i: [x for x in pool.get_data_info(i)['instances'] if not x['ignore_flag']] for i in found}
            truth = [labels_as_detections([x['bbox'] for x in kept[i]], [x['bbox_label'] for x in kept[i]])
                     for i in found]
            return 100 * detection_agreement(truth, list(found.values()), num_classes, score_thr=0.0)
        classes = predict_classes(model, scoring, 64, indices)
        return 100 * sum(c == int(pool.get_data_info(i)['gt_label']) for i, c in classes.items()) / len(classes)
    out: Dict[str, Dict[int, Any]] = dict(model={}, gain={}, estimates={})
    for cycle in range(cycles - 1):
        folder = osp.join(work, 'trial_0', f'cycle_{cycle}')
        if not osp.isfile(osp.join(folder, 'selected.json')):
            continue
        labeled = set(loop.state.labeled(0, cycle).indices)
        unlabeled = [i for i in range(len(pool)) if i not in labeled]
        out['model'][cycle] = score(osp.join(folder, 'model.pth'), unlabeled)
        shadows = [osp.join(folder, 'gain', name, 'model.pth') for name in ('picked', 'random')]
        if osp.isfile(shadows[1]):
            out['gain'][cycle] = score(shadows[0], unlabeled) - score(shadows[1], unlabeled)
        out['estimates'][cycle] = control_metrics(
            build_model(cfg, osp.join(folder, 'model.pth')), pool, scoring, loop.state.selection(0, cycle), None,
            task == 'voc', 16, loop.al.cycle_seed(0, cycle),
            tuple(build_model(cfg, p) for p in shadows) if osp.isfile(shadows[1]) else None)
    with open(cache, 'w') as f:
        json.dump(out, f)
    return out


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
    parser.add_argument('--gain-estimate', action='store_true',
                        help='runs with a control share estimate the gain over random; add a random run per seed')
    parser.add_argument('--pool-truth', action='store_true',
                        help='also score the picking model and the shadows on the whole unlabeled pool, and '
                             'recompute the estimates from the saved models with the current code')
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
    jobs = [(seed, control, False) for control in args.control for seed in range(args.seeds)]
    if args.gain_estimate:
        jobs += [(seed, 0.0, True) for seed in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        works = list(pool.map(lambda job: run(job[0], job[1], args, data_root, random=job[2]), jobs))
    _, _, metric, scale = TASKS[args.task]
    measure = 'mAP' if args.task == 'voc' else 'accuracy'
    random_scores = {seed: {k: scale * v[metric] for k, v in read_results(work, metric, args.cycles).items()}
                     for (seed, _, random), work in zip(jobs, works) if random}
    results = []
    confidence = []  # classification: the label-free average-confidence estimate against the test accuracy
    for (seed, control, random), work in zip(jobs, works):
        rows = read_results(work, metric, args.cycles)
        estimated = {k: 100 * v['stop/confidence'] for k, v in rows.items() if 'stop/confidence' in v}
        if estimated:
            truth = [scale * rows[k][metric] for k in sorted(estimated)]
            confidence.append(dict(seed=seed, control=control, random=random, estimated=estimated,
                                   spearman=spearman([estimated[k] for k in sorted(estimated)], truth),
                                   error=sum(e - t for e, t in zip([estimated[k] for k in sorted(estimated)], truth))
                                   / len(truth)))
        if random:
            continue
        mean_ap = {k: scale * v[metric] for k, v in rows.items()}
        agree = {k: v['stop/agreement'] for k, v in rows.items() if 'stop/agreement' in v}
        cycles = sorted(agree)
        plateau = next((k for k in sorted(mean_ap)[1:] if mean_ap[k] - mean_ap[k - 1] < args.gain), None)

        def covers(name: str, truth: Dict[int, Optional[float]]) -> List[bool]:
            """Per cycle with the estimate ``name`` (in points), whether its interval covers ``truth``."""
            return [100 * v[f'{name}_low'] <= truth[k] <= 100 * v[f'{name}_high'] for k, v in sorted(rows.items())
                    if name in v and truth.get(k) is not None]
        against_random = {k: mean_ap[k] - random_scores.get(seed, {})[k] for k in mean_ap
                          if k in random_scores.get(seed, {})}
        truth = pool_truth(work, osp.join(args.work_dir, f'stop_{osp.basename(work)}.py'), data_root, args.task,
                           args.cycles) if args.pool_truth and control else dict(model={}, gain={}, estimates={})
        for k, values in truth['estimates'].items():  # the estimates as the code makes them now
            rows[k].update(values)
        gains = {k: 100 * v[f'gain/{measure}'] for k, v in rows.items() if f'gain/{measure}' in v}
        shadows = {k: shadow_gain(work, k, metric) for k in gains}
        results.append(dict(seed=seed, control=control, covered=covers(f'control/{measure}', mean_ap),
                            pool_covered=covers(f'control/pool_{measure}', mean_ap), map=mean_ap, agreement=agree,
                            plateau=plateau, gains=gains, against_random=against_random,
                            shadow_gains={k: None if v is None else scale * v for k, v in shadows.items()},
                            gain_covers_shadows=covers(f'gain/{measure}', {k: None if v is None else scale * v
                                                                            for k, v in shadows.items()}),
                            gain_covers_random=covers(f'gain/{measure}', against_random),
                            pool_truth=truth, pool_covers_truth=covers(f'control/pool_{measure}', truth['model']),
                            control_covers_truth=covers(f'control/{measure}', truth['model']),
                            gain_covers_truth=covers(f'gain/{measure}', truth['gain']),
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
                  f'{sum(r["covered"])} of {len(r["covered"])} cycles; the pool estimate\'s in '
                  f'{sum(r["pool_covered"])} of {len(r["pool_covered"])}')
        if r['pool_truth']['model']:
            print(f'seed {r["seed"]}, control {r["control"]:g}: on the whole unlabeled pool the model scores '
                  + ' '.join(f'{k}:{v:.1f}' for k, v in sorted(r['pool_truth']['model'].items()))
                  + f'; the pool estimate\'s interval covers it in {sum(r["pool_covers_truth"])} of '
                  f'{len(r["pool_covers_truth"])} cycles, the control alone in {sum(r["control_covers_truth"])}; '
                  'the shadows\' gain on the pool ' + ' '.join(f'{k}:{v:+.1f}' for k, v in
                                                             sorted(r['pool_truth']['gain'].items()))
                  + f', covered by the gain interval in {sum(r["gain_covers_truth"])} of {len(r["gain_covers_truth"])}')
        if r['gains']:
            print(f'seed {r["seed"]}, control {r["control"]:g}: gain estimate (points) '
                  + ' '.join(f'{k}:{r["gains"][k]:+.1f}' for k in sorted(r['gains']))
                  + ' | shadows on the test set '
                  + ' '.join(f'{k}:{v:+.1f}' for k, v in sorted(r['shadow_gains'].items()) if v is not None)
                  + ' | entropy run minus random run ' + ' '.join(f'{k}:{v:+.1f}' for k, v in
                                                                   sorted(r['against_random'].items()))
                  + f' | the interval covers the shadows\' test gain in {sum(r["gain_covers_shadows"])} of '
                  f'{len(r["gain_covers_shadows"])} cycles, the gain over the random run in '
                  f'{sum(r["gain_covers_random"])} of {len(r["gain_covers_random"])}')
    for c in confidence:
        print(f'seed {c["seed"]}, ' + ('random' if c['random'] else f'control {c["control"]:g}')
              + ': average confidence on the stop set ' + ' '.join(f'{c["estimated"][k]:.1f}' for k in
                                                                  sorted(c['estimated']))
              + f' | Spearman with the test accuracy {c["spearman"]:+.2f} | mean error {c["error"]:+.1f} points')
    finals = {(r['seed'], r['control']): r['map'][max(r['map'])] for r in results}
    for r in results:
        if r['control'] and (r['seed'], 0.0) in finals:
            with_share = [r['map'][k] for k in sorted(r['map'])[1:]]
            without = [x['map'][k] for x in results if (x['seed'], x['control']) == (r['seed'], 0.0)
                       for k in sorted(x['map'])[1:]]
            print(f'seed {r["seed"]}: last cycle {finals[r["seed"], r["control"]]:.1f} with a {r["control"]:g} control '
                  f'share, {finals[r["seed"], 0.0]:.1f} without; mean over cycles 1+ '
                  f'{sum(with_share) / len(with_share):.1f} with it, {sum(without) / len(without):.1f} without')
    print(json.dumps(dict(runs=results, confidence=confidence)))


if __name__ == '__main__':
    main()
