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
import os.path as osp
import sys
from typing import List, Optional

from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmal import checkpoint as checkpoints
from mmal.cli import load_config, run_tool
from mmal.datasets import ImagePoolDataset
from mmal.engine import method_from_flags
from mmal.engine.acquisition import AcquisitionSpec, acquire
from mmal.engine.features import build_features
from mmal.engine.hooks import scoring_pipeline
from mmal.errors import UserError
from mmal.fileio import atomic_write_json, atomic_write_text, check_output_file
from mmal.records import Selection
from mmal.schema import coco_annotations, coco_images, read_json, read_lines


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
    parser.add_argument('--labeled', help='images that are labeled already (never picked; coverage selectors read '
                        'them): a COCO json or a list of image paths, one per line. A COCO pool\'s annotated '
                        'images count as labeled too')
    parser.add_argument('--budget-unit', choices=['images', 'boxes'], default='images',
                        help='count the budget in images (default) or in boxes, estimated by the model\'s boxes '
                        'that score at least --box-threshold')
    parser.add_argument('--box-threshold', type=float, default=0.3,
                        help='score of a box counted by --budget-unit boxes')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle the checkpoint fully (it may run code: only for files you trust)')
    return parser.parse_args(argv)


def select(args: argparse.Namespace) -> Selection:
    if not args.out.endswith(('.csv', '.json')):
        raise UserError(f'--out {args.out} must end in .csv or .json.')
    check_output_file(args.out, '--out')
    cfg = load_config(args.config)
    checkpoints.trust_checkpoints(args.trust_checkpoint)
    al = cfg.get('active_learning') or {}
    spec = AcquisitionSpec(method_from_flags(al, args.scorer, args.selection), args.budget,
                           budget_unit=args.budget_unit, box_threshold=args.box_threshold, adapter=al.get('adapter'),
                           batch_size=args.batch_size, features=build_features(al.get('features')), where='--')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if hasattr(cfg.model, 'backbone') and cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # the checkpoint has the weights
    model = MODELS.build(cfg.model)
    spec.service().check_model(model)  # before the checkpoint is read
    checkpoints.load_weights(model, args.checkpoint)
    model.eval()
    dataset = ImagePoolDataset(pool=args.pool, img_dir=args.img_dir,
                               pipeline=scoring_pipeline(cfg.test_dataloader.dataset.pipeline))
    if args.budget_unit == 'images' and args.budget > len(dataset):
        print(f'budget {args.budget} exceeds the {len(dataset)} pool images; taking all readable ones.',
              file=sys.stderr)
    labeled = labeled_in_pool(dataset, args.pool, args.labeled, args.img_dir)
    if labeled:
        print(f'{len(labeled)} pool images are labeled already: not candidates', file=sys.stderr)
    record = acquire(spec, model, dataset, labeled, pool=args.pool, pool_size=len(dataset), labeled=len(labeled))
    if 'estimated_boxes' in record.context:
        print(f'budget of {args.budget} boxes, estimated by the model\'s boxes scoring >= {args.box_threshold}: '
              f'{record.context["estimated_boxes"]:.0f} boxes bought', file=sys.stderr)
    for image in record.unreadable:
        print(f'skipped unreadable image {image.img_path}: {image.error}', file=sys.stderr)
    return record


def labeled_in_pool(dataset: ImagePoolDataset, pool: str, labeled: Optional[str], img_dir: Optional[str]) -> List[int]:
    """Pool indices of the images already labeled: those a COCO pool annotates, and those ``labeled``
    (a COCO json or a list of paths) names, matched by real path.

    Raises:
        UserError: ``labeled`` cannot be read.
    """
    paths = set()
    for source, folder in ((pool, img_dir), (labeled, None)):
        if not source or not osp.isfile(source):
            if source is labeled and labeled:
                raise UserError(f'--labeled {labeled} does not exist; pass a COCO json or a list of image paths.')
            continue
        base = folder or osp.dirname(source)
        if source.endswith('.json'):
            fix = 'pass a COCO json or a list of image paths.'
            coco = read_json(source, fix)
            images = coco_images(coco, source, fix)
            annotated = {a['image_id'] for a in coco_annotations(coco, source, fix)}
            names = [im['file_name'] for im in images if source is labeled or im['id'] in annotated]
            paths |= {osp.realpath(osp.join(base, n)) for n in names}
        elif source is labeled:
            lines = read_lines(source, 'pass a COCO json or a list of image paths, one per line.')
            paths |= {osp.realpath(line) for line in lines}
    return [i for i in range(len(dataset)) if osp.realpath(dataset.get_data_info(i)['img_path']) in paths]


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
        print(f'selected {len(record.selected)} of {record.context["pool_size"]} images with {record.acted_by}; '
              f'written to {args.out}')
        return 0

    return run_tool(run)


if __name__ == '__main__':
    sys.exit(main())
