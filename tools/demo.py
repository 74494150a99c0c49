"""The README's demo: active learning on the embedded toy VOC set, random vs entropy, over several seeds.

    python tools/demo.py [--work-dir DIR] [--toy-root DIR] [--seeds 3] [--jobs 2]

Makes the toy VOC set when missing, then runs configs/demo/ssd_toyvoc_demo.py with random and with
entropy acquisition through the AL driver once per seed (each seed draws its own
initial labeled set, shared by both methods), ``--jobs`` runs at a time, each with one torch thread
(so the runs neither fight over cores nor depend on how many there are). It prints, per labeled
count, each method's mAP as mean +- std over the seeds and the paired difference entropy - random
(mean +- std of the per-seed differences), writes a report (summary.md, curves.png) in
<work dir>/report, and ends with a JSON line of the figures. Rerunning it resumes the runs in the
work dir, so a finished demo only prints its table again.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

from mmal.datasets import ToyVOCSpec, generate_toy_voc, toy_voc_exists
from mmal.datasets.toy_voc import GENERATOR_VERSION
from mmal.fileio import atomic_write_text
from mmal.report import read_run, write_report

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = ('random', 'entropy')
SCORERS = dict(random='Random', entropy='Entropy')
CONFIG = osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc_demo.py')


def run_one(method: str, seed: int, data_root: str, work_dir: str) -> Tuple[str, int, str]:
    """One AL run (a method, a seed) in its own process with one torch thread; returns its work dir."""
    out = osp.join(work_dir, method, f'seed{seed}')
    roots = ' '.join(f'{loader}.dataset.data_root={data_root}' for loader in
                     ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'al_train.py'), CONFIG, '--work-dir', out, '--no-progress',
           '--cfg-options', f'active_learning.seed={seed}', f'active_learning.scorer.type={SCORERS[method]}',
           'log_level=WARNING', *roots.split()]
    if osp.isfile(osp.join(out, 'al_config.json')):  # a run started before: resume (a finished one just reports)
        cmd.append('--resume')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'error: the {method} run of seed {seed} failed: {proc.stderr.strip().splitlines()[-1]}')
    return method, seed, out


def curve(work_dir: str) -> Dict[int, float]:
    """``{labeled: mAP}`` of one finished run."""
    run = read_run(work_dir)
    return {int(r['num_labeled']): float(r['value']) for r in run.rows if r['metric'] == run.metric}


def mean_std(values: List[float]) -> Tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--toy-root', default=osp.join(ROOT, 'data', 'toy_voc'),
                        help='where the toy VOC set is (made there when missing)')
    parser.add_argument('--seeds', type=int, default=3, help='seeds (initial labeled sets) per method')
    parser.add_argument('--jobs', type=int, default=2, help='runs at a time, one torch thread each')
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        sys.exit('error: --seeds and --jobs must be at least 1.')

    if not toy_voc_exists(args.toy_root, ToyVOCSpec()):
        print(f'[demo] generating the toy VOC dataset in {args.toy_root}')
    data_root = generate_toy_voc(args.toy_root)
    made_on = f'{GENERATOR_VERSION}\n{ToyVOCSpec()}\n'
    stamp = osp.join(args.work_dir, 'toy_voc.txt')
    recorded = open(stamp).read() if osp.isfile(stamp) else None
    if recorded != made_on and (recorded is not None or (osp.isdir(args.work_dir) and os.listdir(args.work_dir))):
        sys.exit(f'error: {args.work_dir} holds a demo run made on another version of the toy set (or before the '
                 'version was recorded), whose numbers it would print again; delete that folder (or pass another '
                 '--work-dir) to run the demo anew.')
    os.makedirs(args.work_dir, exist_ok=True)
    if recorded is None:
        atomic_write_text(stamp, made_on)
    start = time.time()
    seeds = list(range(args.seeds))
    print(f'[demo] {len(METHODS)} methods x {len(seeds)} seeds, {args.jobs} runs at a time (one torch thread each)')
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: run_one(*job, data_root, args.work_dir),
                             [(m, s) for s in seeds for m in METHODS]))
    curves = {(m, s): curve(out) for m, s, out in done}
    counts = sorted(curves[METHODS[0], 0])
    print(f'\n[demo] toy VOC, SSD (TinyVGG), VOC07 mAP@0.5 x100 on the test split after each cycle, mean +- std over '
          f'{len(seeds)} seeds ({time.time() - start:.0f} s):')
    print(f'{"labeled":>8} {"random":>13} {"entropy":>13} {"entropy - random":>17} {"seeds ahead":>11}')
    table = {}
    for n in counts:
        r = [100 * curves['random', s][n] for s in seeds]
        e = [100 * curves['entropy', s][n] for s in seeds]
        diff = [a - b for a, b in zip(e, r)]
        table[n] = dict(random=mean_std(r), entropy=mean_std(e), diff=mean_std(diff), ahead=sum(d > 0 for d in diff))
        row = table[n]
        print(f'{n:>8} {row["random"][0]:>6.1f} +- {row["random"][1]:>3.1f} {row["entropy"][0]:>6.1f} +- '
              f'{row["entropy"][1]:>3.1f} {row["diff"][0]:>+9.1f} +- {row["diff"][1]:>3.1f} '
              f'{row["ahead"]:>7}/{len(seeds)}')
    report = write_report([read_run(out, m) for m, _, out in done], osp.join(args.work_dir, 'report'),
                          title='toy VOC demo: random vs entropy')
    print(f'[demo] report: {report["markdown"]}, {report["plot"]}')
    print(json.dumps({'seeds': len(seeds), 'curves': {f'{m}/seed{s}': {str(k): round(v, 4) for k, v in c.items()}
                                                      for (m, s), c in curves.items()},
                      'table': {str(n): {k: [round(x, 2) for x in v] if isinstance(v, tuple) else v
                                         for k, v in row.items()} for n, row in table.items()},
                      'seconds': round(time.time() - start, 1)}))


if __name__ == '__main__':
    main()
