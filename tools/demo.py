"""The README's main job: active learning on the embedded toy VOC set, random vs entropy.

    python tools/demo.py [--work-dir DIR] [--toy-root DIR]

Makes the toy VOC set when missing, runs configs/demo/ssd_toyvoc_random.py and
configs/demo/ssd_toyvoc_entropy.py through the AL driver (4 cycles each: 100 -> 400 labeled) and
prints both learning curves side by side, with a report (summary.md, curves.png) in
<work dir>/report. Rerunning it resumes the runs in the work dir, so a
finished demo only prints its table again.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time

from mmengine.config import Config

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal.active import ActiveLearningLoop
from mmal.datasets import ToyVOCSpec, generate_toy_voc, toy_voc_exists
from mmal.datasets.toy_voc import GENERATOR_VERSION
from mmal.errors import UserError
from mmal.fileio import atomic_write_text
from mmal.report import read_run, write_report

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = ('random', 'entropy')


def run_method(method: str, data_root: str, work_dir: str) -> dict:
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', f'ssd_toyvoc_{method}.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.log_level = 'WARNING'  # the driver prints one line per cycle
    loop = ActiveLearningLoop(cfg, osp.join(work_dir, method), resume=True)
    metric = loop.al.metric
    return {int(r['num_labeled']): float(r['value']) for r in loop.run() if r['metric'] == metric}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--toy-root', default=osp.join(ROOT, 'data', 'toy_voc'),
                        help='where the toy VOC set is (made there when missing)')
    args = parser.parse_args()

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
    if recorded is None:
        atomic_write_text(stamp, made_on)
    start = time.time()
    curves = {}
    for method in METHODS:
        print(f'[demo] active learning with {method} acquisition')
        try:
            curves[method] = run_method(method, data_root, args.work_dir)
        except UserError as err:
            sys.exit(f'error: {err}')
    print(f'\n[demo] toy VOC, SSD (TinyVGG), VOC07 mAP@0.5 on the test split after each cycle '
          f'({time.time() - start:.0f} s):')
    print(f'{"labeled":>8} {"random":>8} {"entropy":>8} {"diff":>7}')
    for labeled in sorted(curves['random']):
        r, e = curves['random'][labeled], curves['entropy'].get(labeled, float('nan'))
        print(f'{labeled:>8} {r:>8.3f} {e:>8.3f} {e - r:>+7.3f}')
    report = write_report([read_run(osp.join(args.work_dir, m), m) for m in METHODS],
                          osp.join(args.work_dir, 'report'), title='toy VOC demo: random vs entropy')
    print(f'[demo] report: {report["markdown"]}, {report["plot"]}')
    last = max(curves['random'])
    print(json.dumps({'curves': {m: {str(k): round(v, 4) for k, v in c.items()} for m, c in curves.items()},
                      'entropy_minus_random_last': round(curves['entropy'][last] - curves['random'][last], 4),
                      'seconds': round(time.time() - start, 1)}))


if __name__ == '__main__':
    main()
