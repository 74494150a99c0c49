"""Tables and learning curves of AL runs, with the study's published numbers alongside.

    python tools/al_report.py WORK_DIR [WORK_DIR ...] --out DIR [--names N ...] [--metric M]
                              [--baseline random] [--reference TABLE] [--title T]

Each WORK_DIR is an ``al_train.py`` run; its method name is its config's file name with the
prefix all runs share dropped (``cifar10_random``, ``cifar10_entropy`` -> ``random``, ``entropy``),
or ``--names``. Work dirs of the same name pool their trials. Writes ``summary.md`` (mean ± std per
labeled count, budget-curve areas, differences to the baseline), ``summary.csv`` and ``curves.png``.
"""
from __future__ import annotations

import argparse
import sys

from mmal.cli import run_tool
from mmal.errors import UserError
from mmal.fileio import check_output_folder
from mmal.report import read_run, reference_tables, short_names, write_report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Report AL runs: tables, curves, budget-curve areas.')
    parser.add_argument('work_dirs', nargs='+', help='work dirs of al_train.py runs')
    parser.add_argument('--out', required=True, help='folder for summary.md, summary.csv and curves.png')
    parser.add_argument('--names', nargs='+', help='a method name per work dir')
    parser.add_argument('--metric', help='metric to report (default: the one the configs name)')
    parser.add_argument('--baseline', default='random', help='method drawn dotted and compared against')
    parser.add_argument('--reference', help='published table to overlay: ' + ', '.join(reference_tables()))
    parser.add_argument('--title', help='title of the plot and the markdown')
    parser.add_argument('--x', choices=['images', 'boxes'], default='images',
                        help='draw the curves over labeled images (default) or labeled boxes (detection runs)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: report(args))


def report(args: argparse.Namespace) -> int:
    if args.names and len(args.names) != len(args.work_dirs):
        raise UserError(f'--names has {len(args.names)} names for {len(args.work_dirs)} work dirs; '
                        'give one name per work dir.')
    check_output_folder(args.out, '--out')
    runs = [read_run(d, n, args.x) for d, n in zip(args.work_dirs, args.names or [None] * len(args.work_dirs))]
    if not args.names:
        for run, name in zip(runs, short_names([r.name for r in runs])):
            run.name = name
    paths = write_report(runs, args.out, args.metric, args.baseline, args.reference, args.title, args.x)
    with open(paths['markdown']) as f:
        print(f.read())
    print(f'written: {paths["markdown"]}, {paths["csv"]}, {paths["plot"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
