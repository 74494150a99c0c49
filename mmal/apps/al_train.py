"""Run an active-learning experiment: train -> evaluate -> acquire, cycle after cycle.

    python tools/al_train.py CONFIG [--work-dir DIR] [--resume] [--cfg-options k=v ...]

The config is an mmdet-style config with an ``active_learning = dict(...)`` section (see
mmal.active.ALSettings). State goes to the work dir (see mmal.active.state); ``--resume``
continues a run from its last completed step. The results table is printed after every cycle, and
the run's report (tools/al_report.py) is written to ``<work dir>/report`` at the end.
"""
from __future__ import annotations

import argparse
import os.path as osp
import shlex
import sys

from mmengine.config import DictAction

from mmal import checkpoint, dist
from mmal.active import ActiveLearningLoop
from mmal.cli import load_config, run_tool
from mmal.report import read_run, write_report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run an active-learning experiment from a config.')
    parser.add_argument('config', help='config file with an active_learning section')
    parser.add_argument('--work-dir', help='where state and results go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true', help='continue the run in the work dir')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle the config\'s load_from checkpoint fully (only for files you trust)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    work_dir = args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])

    def run() -> int:
        cfg = load_config(args.config, args.cfg_options)
        checkpoint.trust_checkpoints(args.trust_checkpoint)
        if args.launcher != 'none':
            dist.init_dist(args.launcher)  # gloo without CUDA, nccl with it; each cycle's Runner finds it ready
        loop = ActiveLearningLoop(cfg, work_dir, resume=args.resume, launcher=args.launcher,
                                  progress=not args.no_progress)
        loop.run()
        if loop.is_main:
            paths = write_report([read_run(work_dir)], osp.join(work_dir, 'report'), loop.al.metric)
            print(f'\nActive learning with {loop.al.acquisition.name} ({args.config}): results in '
                  f'{work_dir}/results.csv, '
                  f'report in {paths["markdown"]} and {paths["plot"]}')
        return 0

    resume = shlex.join(['python', 'tools/al_train.py', args.config, '--work-dir', work_dir, '--resume'])
    return run_tool(run, interrupted=f'interrupted; every finished step is kept: continue with {resume}')


if __name__ == '__main__':
    sys.exit(main())
