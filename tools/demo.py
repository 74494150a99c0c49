"""The README's main job: make the toy VOC set if missing, train the toy SSD on it, report mAP.

    python tools/demo.py [--work-dir DIR] [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import time

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal.datasets import generate_toy_voc, toy_voc_exists
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc.py')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--epochs', type=int, default=None, help='training epochs (default: the config\'s)')
    parser.add_argument('--toy-root', default=osp.join(ROOT, 'data', 'toy_voc'),
                        help='where the toy VOC set is (made there when missing)')
    args = parser.parse_args()

    toy_root = args.toy_root
    if not toy_voc_exists(toy_root):
        print(f'[demo] generating the toy VOC dataset in {toy_root}')
    data_root = generate_toy_voc(toy_root)

    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    if args.epochs:
        cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = args.epochs
        cfg.param_scheduler[-1].end = cfg.param_scheduler[-1].T_max = args.epochs
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()  # evaluates on the test split after the last epoch (val_interval)
    mAP = runner.message_hub.get_scalar('val/pascal_voc/mAP').current()
    elapsed = time.time() - start
    result = {'mAP': round(float(mAP), 4), 'seconds': round(elapsed, 1),
              'epochs': cfg.train_cfg.max_epochs, 'work_dir': cfg.work_dir}
    print(f"[demo] toy SSD: VOC07 mAP@0.5 {result['mAP']:.3f} on the toy test split after "
          f"{result['epochs']} epochs, {elapsed:.0f} s")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
