"""Check mmal against mmdet's detectors and write what holds into docs/detectors.md.

    mmal sweep                        every config of the installed mmdet's zoo, built tiny, against every
                                      method; writes the record (docs/zoo_sweep.json)
    mmal sweep --only retinanet yolo  the configs whose path holds a pattern (no record written)
    mmal sweep --write                the record's counts into docs/detectors.md
    mmal sweep --matrix [--write]     the family x method support table (printed, or into the page)

Run from a checkout of mmal (the record and the page are its ``docs/``), or name them with
``--record`` and ``--page``. Exit code 1 when a method neither reproduces ``predict`` nor is refused
in one sentence; :mod:`mmal.zoo.sweep` says what each step does.
"""
from __future__ import annotations

import argparse
import json
import sys

from mmal.cli import run_tool
from mmal.errors import UserError
from mmal.zoo import matrix, sweep


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', metavar='PATTERN',
                        help='configs whose path holds one of these (nothing is written)')
    parser.add_argument('--matrix', action='store_true', help='the family x method table instead of the zoo')
    parser.add_argument('--write', action='store_true',
                        help='write the table (--matrix) or the record\'s counts into the page')
    parser.add_argument('--record', default=sweep.RECORD, help=f'the JSON record of a whole sweep ({sweep.RECORD})')
    parser.add_argument('--page', default=matrix.DOCS_PAGE, help=f'the docs page to write ({matrix.DOCS_PAGE})')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_tool(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    if args.matrix:
        if args.only:
            raise UserError('--only picks zoo configs; the --matrix table has no subset: leave one of them out.')
        if args.write:
            matrix.write_readme_section(matrix.render(), args.page)
        else:
            print(matrix.render())
        return 0
    if args.write:
        if args.only:
            raise UserError('--write puts a whole sweep\'s counts into the page; leave --only out.')
        try:
            with open(args.record) as f:
                records = json.load(f)
        except FileNotFoundError:
            raise UserError(f'{args.record} does not exist; run `mmal sweep` first (or name the record with '
                            '--record).') from None
        matrix.write_readme_section(sweep.render(records), args.page, sweep.START, sweep.END)
        return 0
    records = sweep.sweep(sweep.zoo_configs(args.only))
    if not args.only:
        sweep.write_record(records, args.record)
    print(sweep.render(records))
    bad = sweep.failures(records)
    for line in bad:
        print('FAILED', line)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
