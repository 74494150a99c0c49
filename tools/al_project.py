"""Active learning on your own images: a project folder, a labeling tool, one cycle after another.

    python tools/al_project.py init    PROJECT --images DIR_OR_COCO --config CONFIG [--classes A B ...]
                                                [--seed-labels COCO]
    python tools/al_project.py train   PROJECT [--launcher pytorch]
    python tools/al_project.py select  PROJECT --budget N [--scorer NAME] [--selection NAME]
    python tools/al_project.py export  PROJECT [--url-prefix P] [--pre-threshold T]
    python tools/al_project.py import  PROJECT FILE [--skipped pool]
    python tools/al_project.py status  PROJECT

A cycle is train -> select -> export -> (label the batch in Label Studio or CVAT) -> import. Each
command checks that it is the project's next step (or a redo of the last one), and says which one
is when it is not. See mmal/labeling/project.py for what the folder holds.
"""
from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while importing ends quietly; run_tool handles it later

import argparse
import json
import sys

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal import dist
from mmal.cli import run_tool
from mmal.labeling import LabelingProject, commands, create_project


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('init', help='start a project from a folder of images (+ optional seed labels)')
    p.add_argument('project')
    p.add_argument('--images', required=True, help='folder of images (subfolders too) or a COCO json listing them')
    p.add_argument('--config', required=True, help='the mmdet config to train with')
    p.add_argument('--classes', nargs='+', help='class names (default: the seed labels\' categories)')
    p.add_argument('--seed-labels', help='COCO json with labels of some of the images')
    p = sub.add_parser('train', help='train the config\'s model on the labeled set')
    p.add_argument('project')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--no-progress', action='store_true')
    p = sub.add_parser('select', help='pick the next batch to label')
    p.add_argument('project')
    p.add_argument('--budget', type=int, required=True, help='how many images')
    p.add_argument('--scorer', help='scorer name (default: the config\'s active_learning one)')
    p.add_argument('--selection', help='selector name (default: the config\'s; TopK with --scorer)')
    p.add_argument('--budget-unit', choices=['images', 'boxes'], default='images',
                   help='count the budget in images (default) or in boxes, estimated by the model\'s boxes')
    p.add_argument('--box-threshold', type=float, default=0.3, help='score of a box counted by --budget-unit boxes')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--no-progress', action='store_true')
    p = sub.add_parser('export', help='write the batch for Label Studio and CVAT (COCO)')
    p.add_argument('project')
    p.add_argument('--url-prefix', default='/data/local-files/?d=',
                   help='prefix of image URLs in the Label Studio tasks (default: Label Studio local files)')
    p.add_argument('--pre-threshold', type=float, default=0.3, help='score of the model\'s boxes kept as '
                   'pre-annotations')
    p = sub.add_parser('import', help='read the labels that came back and merge them')
    p.add_argument('project')
    p.add_argument('file', help='Label Studio JSON export or COCO json (CVAT, Label Studio)')
    p.add_argument('--skipped', choices=['refuse', 'pool'], default='refuse',
                   help='images without an answer: refuse the file (default) or return them to the pool')
    p = sub.add_parser('status', help='where the project stands')
    p.add_argument('project')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> int:
        if args.command == 'init':
            project = create_project(args.project, args.images, args.config, args.classes, args.seed_labels)
            status = project.status()
            print(f'project {args.project}: {status["pool_images"]} pool images, {status["labeled_images"]} labeled '
                  f'({status["labeled_boxes"]} boxes), classes {", ".join(status["classes"])}; next: '
                  f'{project.state.step}')
            return 0
        if args.command == 'train' and args.launcher != 'none':
            dist.init_dist(args.launcher)
        project = LabelingProject(args.project)
        if args.command == 'train':
            path = commands.train(project, args.launcher, progress=not args.no_progress)
            print(f'trained cycle {project.state.cycle - 0}: {path}; next: select')
        elif args.command == 'select':
            record = commands.select(project, args.budget, args.scorer, args.selection, args.batch_size,
                                     progress=not args.no_progress, budget_unit=args.budget_unit,
                                     box_threshold=args.box_threshold)
            print(f'selected {len(record.selected)} of {record.num_candidates} unlabeled images with '
                  f'{record.acted_by}; next: export')
        elif args.command == 'export':
            files = commands.export(project, args.url_prefix, args.pre_threshold)
            print(f'batch of {len(project.state.out)} images written:\n' +
                  '\n'.join(f'  {name}: {path}' for name, path in files.items()) +
                  f'\nlabel it, export the labels, then: al_project.py import {args.project} FILE')
        elif args.command == 'import':
            images, skipped = project.read_returned(args.file, skipped_to_pool=args.skipped == 'pool')
            counts = project.record_import(images, skipped)
            print(f'imported {counts["images"]} images ({counts["boxes"]} boxes); {counts["skipped"]} skipped images '
                  f'returned to the pool; cycle {project.state.cycle} starts: next: train')
        else:
            print(json.dumps(project.status(), indent=1))
        return 0

    return run_tool(run)


if __name__ == '__main__':
    sys.exit(main())
