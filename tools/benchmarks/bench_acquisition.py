"""Benchmark detection acquisition against plain inference, per detector family, in one run.

    python tools/benchmarks/bench_acquisition.py [--images 8] [--size 320] [--families retinanet,detr]
        [--families-only] [--quick]

1. SSD300 (the study's detector, random weights, 300 px toy images): entropy, variation ratio,
   core-set features, consistency and BALD (T=10), each as a ratio to ``model.predict`` on the
   same preloaded batches, with the adapter's score threshold set to the model's test one (the
   same NMS work).
Each time is the best of several passes over the batches, the passes of predict and of every
method interleaved round by round (at least 3 rounds), so drift of a shared machine's speed
affects them alike.

2. Every family of ``mmal.zoo.matrix`` (the models of ``tests/family_configs`` at
   ``--size`` px with mmdet's own proposal counts; score threshold 0 so an untrained model keeps
   its ``max_per_img`` boxes an image, the heaviest case): entropy, consistency, BALD (T=10),
   PPAL's per-batch work (DCUS scores and the boxes kept for matching), localization tightness
   (two-stage) and localization stability (6 noise levels) as ratios to ``model.predict``; then
   PPAL's diversity step alone (matching and k-medoids over 4 x budget candidates), in seconds.
3. Memory: a fresh process streams N, another 10·N pool images through the entropy scorer on
   SSD300; their peak RSS is compared.

Targets: entropy <= 1.10x, consistency <= 2.1x, BALD (T=10) <= 1.6x, PPAL <= 1.3x, tightness
<= 1.10x for every family that runs it (stability has none: it runs the detector 7 times); RSS of
10·N within 10 % of N. The last line is a JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import mmal  # noqa: E402,F401
from mmal.datasets import ImagePoolDataset, ToyVOCSpec, generate_toy_voc  # noqa: E402
from mmal.engine import AcquisitionService, build_method  # noqa: E402
from mmal.engine.class_quality import num_classes_of  # noqa: E402
from mmal.engine.hooks import scoring_pipeline  # noqa: E402
from mmal.models import DetectionAdapter  # noqa: E402

SSD300 = osp.join(ROOT, 'configs', 'ssd300_voc0712.py')
#: name -> (scorer, selection, adapter options, target ratio)
SSD_METHODS = {
    'entropy': (dict(type='Entropy'), None, {}, 1.10),
    'var_ratio': (dict(type='VariationRatio'), None, {}, 1.10),
    'coreset_features': (None, dict(type='KCenterGreedy'), dict(feature_level=1), 1.10),
    'consistency': (dict(type='Consistency'), None, {}, 2.10),
    'bald_t10': (dict(type='BALD'), None, dict(mc_samples=10), 1.60),
}
FAMILY_METHODS = {
    **{k: SSD_METHODS[k] for k in ('entropy', 'consistency', 'bald_t10')},
    # PPAL's per-batch work: DCUS scores plus each image's boxes kept for the matching step
    'ppal': (dict(type='DifficultyCalibratedUncertainty'), dict(type='CategoryMatching'), {}, 1.30),
    # Kao et al.: tightness reads the proposals (two-stage only); stability re-runs the detector on
    # noisy copies, once per noise level (6 by default): no target, it costs what it runs
    'loc_tightness': (dict(type='LocalizationTightness'), None, {}, 1.10),
    'loc_stability': (dict(type='LocalizationStability'), None, {}, None),
}
#: benchmark method -> the support-matrix column that says where it runs
MATRIX_COLUMN = {'entropy': 'Entropy', 'consistency': 'Consistency', 'bald_t10': 'BALD', 'ppal': 'PPAL',
                 'loc_tightness': 'LocTightness', 'loc_stability': 'LocStability'}


def quiet_build(cfg_model) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(cfg_model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    model.init_weights()  # SSD300's L2Norm scale is torch.empty until initialised
    logger.setLevel(level)
    return model.eval()


def ssd300():
    register_all_modules()
    cfg = Config.fromfile(SSD300)
    cfg.model.backbone.init_cfg = None  # random weights, no download
    return cfg, quiet_build(cfg.model)


def toy_loader(cfg, toy_root: str, num: int, batch_size: int) -> DataLoader:
    ids = osp.join(toy_root, 'VOCdevkit', 'ToyVOC', 'ImageSets', 'Main', 'trainval.txt')
    with open(ids) as f:
        names = [line.strip() for line in f if line.strip()][:num]
    paths = [osp.join(toy_root, 'VOCdevkit', 'ToyVOC', 'JPEGImages', f'{n}.jpg') for n in names]
    dataset = ImagePoolDataset(pool=paths, pipeline=scoring_pipeline(cfg.test_dataloader.dataset.pipeline))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)


def noise_batches(num: int, size: int, batch_size: int) -> list:
    """Batches of uint8 noise images with their metainfo (untrained models keep boxes everywhere)."""
    g = torch.Generator().manual_seed(0)
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0))
    batches = []
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        batches.append(dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                                    for _ in range(n)],
                            data_samples=[DetDataSample(metainfo=dict(meta)) for _ in range(n)]))
    return batches


def interleaved(fns: dict, batches, min_seconds: float = 20.0) -> dict:
    """Seconds of the best pass over ``batches`` of each function. The passes are interleaved (one
    of each per round, at least 3 rounds and ``min_seconds`` in all), so a machine that speeds up
    or slows down during the run affects every function alike."""
    for fn in fns.values():
        fn(batches[0])  # warm-up
    best = {name: float('inf') for name in fns}
    spent, rounds = 0.0, 0
    while rounds < 3 or spent < min_seconds:
        for name, fn in fns.items():
            start = time.perf_counter()
            for batch in batches:
                fn(batch)
            took = time.perf_counter() - start
            best[name], spent = min(best[name], took), spent + took
        rounds += 1
    return best


def ratios(model, batches, methods, **adapter_args) -> dict:
    """``{method: time / predict time}`` on the same batches, plus ``predict_img_s``."""
    fns = {'predict': lambda b: model.test_step(b)}
    for name, (scorer_cfg, selection, extra, _) in methods.items():
        method = build_method(scorer_cfg, selection)
        adapter = DetectionAdapter(model, method.requires, **adapter_args, **extra)
        fns[name] = lambda b, method=method, adapter=adapter: per_batch(method, adapter(b))
    with torch.no_grad():
        best = interleaved(fns, batches)
    images = sum(len(b['inputs']) for b in batches)
    out = {'predict_img_s': round(images / best['predict'], 3)}
    out.update({name: round(best[name] / best['predict'], 3) for name in methods})
    return out


def per_batch(method, outputs) -> None:
    """What an acquisition keeps of one batch: the scores and the selector's per-image inputs."""
    if method.scorer is not None:
        method.scorer(outputs)
    if method.selector.requires:
        method.selector.image_inputs(outputs)


def matching_step(budget: int, boxes: int = 20, dim: int = 256, classes: int = 20) -> dict:
    """Seconds of PPAL's diversity step (category-conditioned matching and k-medoids over
    ``pool_factor x budget`` candidates) on synthetic boxes."""
    from mmal.selection import CategoryMatching
    selector = CategoryMatching(seed=0)
    num = selector.pool_factor * budget
    g = torch.Generator().manual_seed(0)
    image_index = torch.arange(num).repeat_interleave(boxes)
    outputs = dict(num_images=num, image_index=image_index, labels=torch.randint(classes, (len(image_index), ),
                                                                                   generator=g),
                   scores=torch.rand(len(image_index), generator=g),
                   last_layer_input=torch.randn(len(image_index), dim, generator=g))
    inputs = selector.image_inputs(outputs)
    start = time.perf_counter()
    picks = selector.select(budget, torch.rand(num, generator=g), inputs, torch.zeros(num, dtype=torch.bool))
    assert len(picks) == budget
    return {'budget': budget, 'candidates': num, 'seconds': round(time.perf_counter() - start, 2)}


def rss_child(toy_root: str, num: int, batch_size: int) -> None:
    cfg, model = ssd300()
    service = AcquisitionService(build_method(dict(type='Entropy')), dict(score_thr=model.bbox_head.test_cfg.score_thr),
                                 batch_size=batch_size, progress=False)
    pool = toy_loader(cfg, toy_root, num, batch_size).dataset
    result = service.run(model, pool, labeled=[], budget=num)
    assert len(result.picks) == num
    print(json.dumps({'images': num, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def load_matrix():
    from mmal.zoo import matrix
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=8, help='images per throughput measurement')
    parser.add_argument('--size', type=int, default=320, help='image size of the family models')
    parser.add_argument('--families', default=None, help='comma-separated families (default: all)')
    parser.add_argument('--rss-pool', type=int, default=8, help='N of the memory comparison (N vs 10N)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--quick', action='store_true', help='two families, tiny sizes, no SSD300 or memory part')
    parser.add_argument('--families-only', action='store_true', help='only part 2 (e.g. to re-measure some families)')
    parser.add_argument('--toy-root', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--rss-child', type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    toy_root = args.toy_root or osp.join(tempfile.gettempdir(), 'mmal_bench_toy_voc_300')
    if args.rss_child is not None:
        rss_child(toy_root, args.rss_child, args.batch_size)
        return
    register_all_modules(init_default_scope=True)
    figures = {'bench': 'detection_acquisition', 'threads': torch.get_num_threads(), 'images': args.images}
    ok = True

    if not (args.quick or args.families_only):  # 1. SSD300
        generate_toy_voc(toy_root, ToyVOCSpec(num_trainval=max(args.images, 10 * args.rss_pool), num_test=1,
                                              image_size=300, seed=0))
        cfg, model = ssd300()
        batches = list(toy_loader(cfg, toy_root, args.images, args.batch_size))
        ssd = ratios(model, batches, SSD_METHODS, score_thr=model.bbox_head.test_cfg.score_thr)
        print(f'SSD300 (random weights), {args.images} toy images at 300 px: predict {ssd["predict_img_s"]} img/s; '
              + ', '.join(f'{k} {ssd[k]:.2f}x' for k in SSD_METHODS))
        ok &= all(ssd[k] <= SSD_METHODS[k][3] for k in SSD_METHODS)
        figures['ssd300'] = ssd

    # 2. every family
    matrix = load_matrix()
    names = args.families.split(',') if args.families else list(matrix.FAMILIES)
    if args.quick:
        names, args.size, args.images = names[:2] if not args.families else names, 128, 2
    batches = noise_batches(args.images, args.size, args.batch_size)
    print(f'families: {args.images} noise images at {args.size} px, batch {args.batch_size}, score threshold 0 '
          '(max_per_img boxes an image); ratio to predict')
    print(f'  {"detector":16s} {"predict":>10s} ' + ' '.join(f'{k:>14s}' for k in FAMILY_METHODS))
    per_family = {}
    for name in names:
        cfg = Config.fromfile(osp.join(ROOT, 'tests', 'family_configs', f'{name}.py'))
        if 'rpn' in cfg.model.get('test_cfg', {}):  # mmdet's own proposal counts, not the tests' small ones
            cfg.model.test_cfg.rpn.update(nms_pre=1000, max_per_img=1000)
        model = quiet_build(cfg.model)
        model.mmal_class_quality = torch.rand(num_classes_of(model))  # what ClassQualityHook leaves
        methods = {k: v for k, v in FAMILY_METHODS.items()
                   if matrix.supported(MATRIX_COLUMN[k], matrix.FAMILIES[name][2])}
        found = ratios(model, batches, methods)
        met = all(found[k] <= methods[k][3] for k in methods if methods[k][3] is not None)
        ok &= met
        per_family[name] = found
        print(f'  {matrix.FAMILIES[name][0]:16s} {found["predict_img_s"]:7.2f}/s '
              + ' '.join(f'{found[k]:13.2f}x' if k in found else f'{"refused":>14s}' for k in FAMILY_METHODS)
              + ('' if met else '   (misses a target)'))
    figures['families'] = per_family
    steps = [matching_step(budget) for budget in ((25, ) if args.quick else (100, 500))]
    print('PPAL diversity step (matching + k-medoids, 20 boxes x 256-D an image, 20 classes): '
          + ', '.join(f'{s["candidates"]} candidates -> {s["budget"]} in {s["seconds"]} s' for s in steps))
    figures['ppal_diversity_step'] = steps

    if not (args.quick or args.families_only):  # 3. memory
        peaks = []
        for num in (args.rss_pool, 10 * args.rss_pool):
            out = subprocess.run([sys.executable, __file__, '--rss-child', str(num), '--toy-root', toy_root,
                                  '--batch-size', str(args.batch_size)], capture_output=True, text=True, check=True)
            peaks.append(json.loads(out.stdout.strip().splitlines()[-1])['peak_rss_mib'])
        growth = peaks[1] / peaks[0]
        ok &= growth <= 1.10
        print(f'peak RSS, entropy over {args.rss_pool} images: {peaks[0]:.0f} MiB; over {10 * args.rss_pool}: '
              f'{peaks[1]:.0f} MiB ({growth:.3f}x, target <= 1.10x)')
        figures.update(rss_n_mib=round(peaks[0], 1), rss_10n_mib=round(peaks[1], 1), rss_ratio=round(growth, 3))
    figures['meets_targets'] = bool(ok)
    print(json.dumps(figures))


if __name__ == '__main__':
    main()
