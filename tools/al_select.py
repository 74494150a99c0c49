"""Rank your own unlabeled images with a trained detector and write the ones to label next.

    python tools/al_select.py CONFIG CHECKPOINT --pool POOL --budget N --out FILE [--scorer NAME]

POOL is a VOC ImageSets list, a COCO json or a folder of images. The scorer is the config's
``active_learning.scorer`` unless --scorer names another. FILE ends in .csv or .json; it lists
rank, image id, path and score of the N images to label next. Unreadable images are skipped,
named, and listed in the output (JSON) or on stderr (CSV).
"""
from __future__ import annotations

import argparse
import csv
import io
import os.path as osp
import sys

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal.datasets import ImagePoolDataset
from mmal.engine import build_adapter, pool_loader, score_pool
from mmal.engine.hooks import scoring_pipeline
from mmal.errors import UserError
from mmal.fileio import atomic_write_json, atomic_write_text
from mmal.registry import SCORERS
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--pool', required=True, help='VOC ImageSets list, COCO json or folder of images')
    parser.add_argument('--img-dir', help='image folder of a COCO json (default: the json\'s folder)')
    parser.add_argument('--budget', type=int, required=True, help='how many images to select')
    parser.add_argument('--out', required=True, help='output file, .csv or .json')
    parser.add_argument('--scorer', help='scorer name, e.g. Entropy (default: the config\'s)')
    parser.add_argument('--batch-size', type=int, default=8)
    return parser.parse_args(argv)


def select(args) -> dict:
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise UserError(f'{what} {path} does not exist; check the path.')
    if not args.out.endswith(('.csv', '.json')):
        raise UserError(f'--out {args.out} must end in .csv or .json.')
    if args.budget < 1:
        raise UserError(f'--budget must be a positive number of images, got {args.budget}.')
    cfg = Config.fromfile(args.config)
    al = cfg.get('active_learning', {})
    scorer_cfg = dict(type=args.scorer) if args.scorer else dict(al.get('scorer', {}))
    if not scorer_cfg:
        raise UserError('the config has no active_learning.scorer; name one with --scorer (e.g. --scorer Entropy).')
    if scorer_cfg['type'] not in SCORERS.module_dict:
        raise UserError(f'unknown scorer {scorer_cfg["type"]!r}; registered scorers: '
                        f'{", ".join(sorted(SCORERS.module_dict))}.')
    if scorer_cfg['type'] == 'CoreSet':
        raise UserError('al_select ranks images by a score; core-set needs the labeled set, use tools/al_train.py.')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    scorer = SCORERS.build(scorer_cfg)
    if hasattr(cfg.model, 'backbone') and cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # the checkpoint has the weights
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    dataset = ImagePoolDataset(pool=args.pool, img_dir=args.img_dir,
                               pipeline=scoring_pipeline(cfg.test_dataloader.dataset.pipeline))
    adapter = build_adapter(model, scorer.requires, al.get('adapter'))
    failed: list = []
    scores = score_pool(adapter, scorer, pool_loader(dataset, args.batch_size), True, 'ranking', failed)
    unreadable = {i: err for i, err in failed}
    readable = [i for i in range(len(dataset)) if i not in unreadable]
    if args.budget > len(readable):
        print(f'budget {args.budget} exceeds the {len(readable)} readable pool images; taking all of them.',
              file=sys.stderr)
    order = scorer.select(scores[readable], min(args.budget, len(readable))).tolist()
    picks = []
    for rank, i in enumerate(order, 1):
        info = dataset.get_data_info(readable[i])
        picks.append(dict(rank=rank, img_id=str(info['img_id']), img_path=info['img_path'],
                          score=float(scores[readable[i]])))
    skipped = [dict(img_path=dataset.get_data_info(i)['img_path'], error=e) for i, e in sorted(unreadable.items())]
    for s in skipped:
        print(f'skipped unreadable image {s["img_path"]}: {s["error"]}', file=sys.stderr)
    return dict(scorer=scorer_cfg, pool=args.pool, pool_size=len(dataset), budget=args.budget, selected=picks,
                unreadable=skipped)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = select(args)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.out.endswith('.json'):
        atomic_write_json(args.out, result)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=['rank', 'img_id', 'img_path', 'score'], lineterminator='\n')
        writer.writeheader()
        writer.writerows(result['selected'])
        atomic_write_text(args.out, buffer.getvalue())
    print(f'selected {len(result["selected"])} of {result["pool_size"]} images with {result["scorer"]["type"]}; '
          f'written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
