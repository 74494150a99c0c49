"""Active learning on your own images: a project folder, a labeling tool, one cycle after another.

    python tools/al_project.py init    PROJECT --images DIR_OR_COCO --config CONFIG [--classes A B ...]
                                                [--seed-labels COCO]
    python tools/al_project.py train   PROJECT [--launcher pytorch] [--cfg-options k=v ...]
    python tools/al_project.py select  PROJECT --budget N [--scorer NAME] [--selection NAME]
    python tools/al_project.py export  PROJECT [--url-prefix P] [--pre-threshold T]
    python tools/al_project.py import  PROJECT FILE [--skipped pool] [--convert polygon ...] [--annotations latest]
    python tools/al_project.py review  PROJECT [--cycle K] [--out RANKED.csv|.json] [--min-score S] [--top N]
    python tools/al_project.py import  PROJECT FIXED_FILE --review [--cycle K]   (the review batch, fixed)
    python tools/al_project.py push    PROJECT --url URL [--token T] [--ls-project ID]   (Label Studio's API)
    python tools/al_project.py pull    PROJECT [--skipped pool] [--convert ...]
    python tools/al_project.py config  PROJECT CONFIG
    python tools/al_project.py status  PROJECT

A cycle is train -> select -> export (or push) -> (label the batch in Label Studio or CVAT) -> import
(or pull). Every import is reviewed: the model that picked the batch (it had not seen these labels)
scores each returned label and image for likely errors (missing, spurious, wrong-class and badly
located boxes; mmal/labeling/review.py) and ``review`` sends the most suspicious for a second look.
Each command checks that it is the project's next step (or a redo of the last one), and
says which one is when it is not; a command that changes the project holds its lock, so a second
one at the same time is refused. See mmal/labeling/project.py for what the folder holds.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from contextlib import nullcontext

from mmengine.config import DictAction
from mmengine.dist import get_rank

from mmal import dist
from mmal.cli import run_tool
from mmal.errors import UserError
from mmal.fileio import atomic_write_json, atomic_write_text
from mmal.labeling import LabelingProject, Returned, commands, create_project
from mmal.labeling import review as reviews
from mmal.labeling.lock import project_lock
from mmal.labeling.readers import CONVERTIBLE
from mmal.labeling.review import SUSPICIOUS


def _import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument('--skipped', choices=['refuse', 'pool'], default='refuse',
                   help='images without an answer: refuse the file (default) or return them to the pool')
    p.add_argument('--convert', nargs='+', choices=CONVERTIBLE, default=[], metavar='SHAPE',
                   help=f'import these shapes as their bounding box ({", ".join(CONVERTIBLE)}); default: refuse them')
    p.add_argument('--annotations', choices=['refuse', 'latest'], default='refuse',
                   help='several answers for one image (none marked ground truth): refuse (default) or take the '
                   'latest')


def _preannotation_flags(p: argparse.ArgumentParser) -> None:
    """``export`` and ``push``: which model boxes go out as pre-annotations, and config overrides."""
    p.add_argument('--pre-threshold', type=float, default=0.3, help='score of the model\'s boxes kept as '
                   'pre-annotations')
    _cfg_options(p)


def _cfg_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys for this run, key=value')


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
    _cfg_options(p)
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
    _cfg_options(p)
    p = sub.add_parser('export', help='write the batch for Label Studio and CVAT (COCO)')
    p.add_argument('project')
    p.add_argument('--url-prefix', default='/data/local-files/?d=',
                   help='prefix of image URLs in the Label Studio tasks (default: Label Studio local files)')
    _preannotation_flags(p)
    p = sub.add_parser('import', help='read the labels that came back and merge them')
    p.add_argument('project')
    p.add_argument('file', help='Label Studio JSON export or COCO json (CVAT, Label Studio)')
    _import_flags(p)
    p.add_argument('--review', action='store_true',
                   help='FILE holds the fixed labels of a review batch (al_project.py review), not a new batch')
    p.add_argument('--cycle', type=int, help='with --review: the cycle whose review batch it is (default: the last '
                   'imported)')
    p = sub.add_parser('review', help='rank the last imported labels by how likely they are wrong; write a review '
                       'batch for a second annotator')
    p.add_argument('project')
    p.add_argument('--cycle', type=int, help='the cycle whose imported labels to review (default: the last)')
    p.add_argument('--out', help='write the ranked images to this .csv or .json')
    p.add_argument('--min-score', type=float, default=SUSPICIOUS,
                   help=f'send the images scoring at least this for review (default {SUSPICIOUS})')
    p.add_argument('--top', type=int, help='send at most this many images')
    p.add_argument('--url-prefix', default='/data/local-files/?d=', help='as for export')
    p = sub.add_parser('push', help='send the batch to a Label Studio server (its API): project, images, tasks')
    p.add_argument('project')
    p.add_argument('--url', help='the Label Studio server (default: the one pushed to before)')
    p.add_argument('--token', help='an API token (default: $LABEL_STUDIO_API_KEY)')
    p.add_argument('--ls-project', type=int, help='a Label Studio project id to use (default: the one pushed to '
                   'before, else a new one)')
    p.add_argument('--document-root', help='the server\'s LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the '
                   'image folder\'s parent)')
    _preannotation_flags(p)
    p = sub.add_parser('pull', help='fetch this batch\'s labels from Label Studio (its API) and import them')
    p.add_argument('project')
    p.add_argument('--token', help='an API token (default: $LABEL_STUDIO_API_KEY)')
    _import_flags(p)
    p = sub.add_parser('config', help='train with another mmdet config from now on')
    p.add_argument('project')
    p.add_argument('config')
    p = sub.add_parser('status', help='where the project stands')
    p.add_argument('project')
    return parser.parse_args(argv)


def import_summary(counts: dict, project: LabelingProject) -> str:
    """The lines ``import`` and ``pull`` print."""
    lines = [f'imported {counts["images"]} images ({counts["boxes"]} boxes; {counts["images_without_boxes"]} came back '
             f'without a box); {counts["skipped"]} skipped images returned to the pool']
    if counts['earlier_cycles_ignored']:
        lines.append(f'{counts["earlier_cycles_ignored"]} tasks of earlier cycles ignored')
    for kind, n in counts['converted_to_boxes'].items():
        lines.append(f'{n} {kind} shapes imported as their bounding box')
    if counts['other_results_ignored']:
        lines.append('results that are not shapes, ignored: ' + ', '.join(
            f'{n} {kind}' for kind, n in counts['other_results_ignored'].items()))
    lines.append(f'cycle {project.state.cycle} starts: next: train')
    return '\n'.join(lines)


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
        if args.command == 'status':
            print(json.dumps(LabelingProject(args.project).status(), indent=1))
            return 0
        if args.command == 'train' and args.launcher != 'none':
            dist.init_dist(args.launcher)
        LabelingProject(args.project)  # a missing or damaged project is one sentence before the lock is made
        lock = project_lock(args.project, args.command) if get_rank() == 0 else nullcontext()
        with lock:
            return change(args, LabelingProject(args.project))

    return run_tool(run)


def change(args: argparse.Namespace, project: LabelingProject) -> int:
    """The commands that change the project (run with its lock held)."""
    options = getattr(args, 'cfg_options', None)
    if args.command == 'train':
        path = commands.train(project, args.launcher, progress=not args.no_progress, options=options)
        if path is None:
            print('nothing is labeled yet, so there is nothing to train; next: select (the first batch is picked at '
                  'random)')
        else:
            print(f'trained cycle {project.state.cycle}: {path}; next: select')
    elif args.command == 'select':
        record = commands.select(project, args.budget, args.scorer, args.selection, args.batch_size,
                                 progress=not args.no_progress, budget_unit=args.budget_unit,
                                 box_threshold=args.box_threshold, options=options)
        print(f'selected {len(record.selected)} of {record.num_candidates} unlabeled images with '
              f'{record.acted_by}; next: export (or push)')
    elif args.command == 'export':
        files = commands.export(project, args.url_prefix, args.pre_threshold, options=options)
        print(f'batch of {len(project.state.out)} images written:\n' +
              '\n'.join(f'  {name}: {path}' for name, path in files.items()) +
              f'\nlabel it, export the labels, then: al_project.py import {args.project} FILE')
    elif args.command == 'import' and args.review:
        cycle = project.state.cycle - 1 if args.cycle is None else args.cycle
        fixes = project.read_review_fixes(args.file, cycle, args.convert, args.annotations)
        done = project.record_review(fixes, cycle, args.file)
        print(f'review of cycle {cycle}: {done["images"]} images came back, {done["changed"]} with changed labels '
              f'({done["boxes_before"]} boxes before, {done["boxes_after"]} after); the next training uses them')
    elif args.command == 'review':
        found = reviews.reviewed(project, args.cycle)
        print('\n'.join(reviews.summary_lines(found, args.project, top=10)[:-1]))
        if args.out:
            write_ranked(found, args.out)
            print(f'ranked images: {args.out}')
        sent = reviews.write_review_batch(project, found, args.min_score, args.url_prefix, args.top)
        print(f'review batch of {len(sent["ids"])} images (score >= {args.min_score}), each with its returned labels '
              'and the model\'s disagreeing boxes as predictions:\n'
              + '\n'.join(f'  {name}: {path}' for name, path in sent['files'].items())
              + f'\nfix them, export the labels, then: al_project.py import {args.project} FILE --review')
    elif args.command in ('import', 'pull'):
        ctx = dict(skipped_to_pool=args.skipped == 'pool', convert=args.convert, several=args.annotations)
        if args.command == 'import':
            project.expect_import(args.file)
            returned: Returned = project.read_returned(args.file, project.import_context(**ctx))
            source = args.file
        else:
            from mmal.labeling import labelstudio

            returned, source = labelstudio.pull(project, project.import_context(**ctx), args.token)
        print(import_summary(project.record_import(returned, source), project))
        review = reviews.review_cycle(project, project.state.cycle - 1)
        print('\n'.join(reviews.summary_lines(review, args.project)) if review else
              'review: none (no model picked this batch, so none can check its labels)')
    elif args.command == 'push':
        from mmal.labeling import labelstudio

        print(labelstudio.push(project, args.url, args.token, args.ls_project, args.pre_threshold, options,
                               args.document_root))
    elif args.command == 'config':
        commands.project_config(project, path=args.config)  # readable, one output per class
        step = project.set_config(args.config)
        print(f'project {args.project} now trains with {project.state.config}; next: {step}')
    return 0


def write_ranked(record: dict, path: str) -> None:
    """The review's ranked images as CSV (one row each) or JSON (the whole record)."""
    if path.endswith('.json'):
        atomic_write_json(path, record)
    elif path.endswith('.csv'):
        rows = reviews.ranked_rows(record)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ['rank'])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())
    else:
        raise UserError(f'--out {path} must end in .csv or .json.')


if __name__ == '__main__':
    sys.exit(main())
