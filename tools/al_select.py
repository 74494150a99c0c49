"""Rank your own unlabeled images with a trained model and write the ones to label next.

    python tools/al_select.py CONFIG CHECKPOINT --pool POOL --budget N --out FILE
                              [--scorer NAME] [--selection NAME] [--trust-checkpoint]

POOL is a VOC ImageSets list, a COCO json or a folder of images. The scorer and selection are the
config's ``active_learning`` ones unless --scorer or --selection is given: then the method is the
one those flags name (a flag left out takes the default of ``mmal.engine.build_method``). The checkpoint must
be one of the config's model (loaded strictly: a checkpoint of another model or class count is an
error); it is loaded without running code from it unless --trust-checkpoint is given. FILE ends
in .csv or .json; it lists rank, image id, path and score of the N images to label next.
Unreadable images are skipped, named, and listed in the output (JSON) or on stderr (CSV).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys

from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal import checkpoint as checkpoints
from mmal.cli import load_config, run_tool
from mmal.datasets import ImagePoolDataset
from mmal.engine import AcquisitionService, method_from_flags
from mmal.engine.acquisition import selection_record
from mmal.engine.hooks import scoring_pipeline
from mmal.errors import UserError
from mmal.fileio import atomic_write_json, atomic_write_text
from mmal.records import Selection


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--pool', required=True, help='VOC ImageSets list, COCO json or folder of images')
    parser.add_argument('--img-dir', help='image folder of a COCO json (default: the json\'s folder)')
    parser.add_argument('--budget', type=int, required=True, help='how many images to select')
    parser.add_argument('--out', required=True, help='output file, .csv or .json')
    parser.add_argument('--scorer', help='scorer name, e.g. Entropy (default: the config\'s)')
    parser.add_argument('--selection', help='selector name, e.g. BADGE (default: the config\'s; TopK with --scorer)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle the checkpoint fully (it may run code: only for files you trust)')
    return parser.parse_args(argv)


def select(args: argparse.Namespace) -> Selection:
    if not args.out.endswith(('.csv', '.json')):
        raise UserError(f'--out {args.out} must end in .csv or .json.')
    if args.budget < 1:
        raise UserError(f'--budget must be a positive number of images, got {args.budget}.')
    if args.batch_size < 1:
        raise UserError(f'--batch-size must be a positive number of images, got {args.batch_size}.')
    cfg = load_config(args.config)
    checkpoints.trust_checkpoints(args.trust_checkpoint)
    al = cfg.get('active_learning') or {}
    method = method_from_flags(al, args.scorer, args.selection)
    service = AcquisitionService(method, al.get('adapter'), batch_size=args.batch_size)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if hasattr(cfg.model, 'backbone') and cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # the checkpoint has the weights
    model = MODELS.build(cfg.model)
    service.check_model(model)
    checkpoints.load_weights(model, args.checkpoint)
    model.eval()
    dataset = ImagePoolDataset(pool=args.pool, img_dir=args.img_dir,
                               pipeline=scoring_pipeline(cfg.test_dataloader.dataset.pipeline))
    if args.budget > len(dataset):
        print(f'budget {args.budget} exceeds the {len(dataset)} pool images; taking all readable ones.',
              file=sys.stderr)
    result = service.run(model, dataset, labeled=[], budget=args.budget)
    record = selection_record(result, dataset, method, args.budget, pool=args.pool, pool_size=len(dataset))
    for image in record.unreadable:
        print(f'skipped unreadable image {image.img_path}: {image.error}', file=sys.stderr)
    return record


def write(record: Selection, out: str) -> None:
    """The selection as JSON (:class:`~mmal.records.Selection`) or as CSV: rank, image id, path, score."""
    if out.endswith('.json'):
        atomic_write_json(out, record.to_json())
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=['rank', 'img_id', 'img_path', 'score'], lineterminator='\n')
    writer.writeheader()
    writer.writerows(dict(rank=rank, img_id=p.img_id, img_path=p.img_path, score=p.score)
                     for rank, p in enumerate(record.selected, 1))
    atomic_write_text(out, buffer.getvalue())


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> int:
        record = select(args)
        write(record, args.out)
        method = record.selection['type'] + (f' + {record.scorer["type"]}' if record.scorer else '')
        print(f'selected {len(record.selected)} of {record.context["pool_size"]} images with {method}; written to '
              f'{args.out}')
        return 0

    return run_tool(run)


if __name__ == '__main__':
    sys.exit(main())
