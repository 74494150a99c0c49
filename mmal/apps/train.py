"""Train (and evaluate) one mmdet-style config once, on CPU or GPU, in one or several processes.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--cfg-options k=v ...]
    python -m torch.distributed.run --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch

Without CUDA a multi-process run uses the gloo backend (see mmal.dist).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.runner import Runner

from mmal import dist
from mmal.cli import load_config, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector or classifier from a config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: train(args))


def train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.resume = args.resume
    dist.distributed_cfg(cfg, args.launcher)
    if args.launcher != 'none':
        dist.init_dist(args.launcher, backend=cfg.env_cfg.dist_cfg.get('backend'))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
