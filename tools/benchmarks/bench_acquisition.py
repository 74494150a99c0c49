"""Benchmark detection acquisition on the real SSD300 (random weights) against plain inference.

    python tools/benchmarks/bench_acquisition.py [--images 16] [--rss-pool 8] [--batch-size 8]

1. Throughput: the same preloaded batches of toy images at 300 px go through ``model.predict``
   and through the adapter + scorer of each acquisition function; each method's time is reported
   as a ratio to plain inference measured in this run. Both sides do the same NMS work: the
   adapter's ``score_thr`` is set to the model's test ``score_thr``.
2. Memory: a fresh process streams a pool of N images through the entropy scorer, another one a
   pool of 10·N; their peak RSS is compared.

Targets: entropy, variation ratio, core-set features <= 1.10x; consistency <= 2.1x; BALD (T=10)
<= 1.6x; peak RSS of 10·N within 10% of N. The last line is a JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import mmal  # noqa: E402,F401
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from mmal.datasets import ImagePoolDataset, ToyVOCSpec, generate_toy_voc  # noqa: E402
from mmal.engine import score_pool  # noqa: E402
from mmal.engine.hooks import scoring_pipeline  # noqa: E402
from mmal.models import DetectionAdapter  # noqa: E402
from mmal.registry import SCORERS  # noqa: E402

CONFIG = osp.join(ROOT, 'configs', 'ssd300_voc0712.py')
METHODS = {
    'entropy': (dict(type='Entropy'), {}, 1.10),
    'var_ratio': (dict(type='VariationRatio'), {}, 1.10),
    'coreset_features': (dict(type='CoreSet'), dict(feature_level=1), 1.10),
    'consistency': (dict(type='Consistency'), {}, 2.10),
    'bald_t10': (dict(type='BALD'), dict(mc_samples=10), 1.60),
}


def build():
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None  # random weights, no download
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # L2Norm's scale is torch.empty until initialised
    model.eval()
    return cfg, model


def pool_loader(cfg, toy_root: str, num: int, batch_size: int) -> DataLoader:
    ids = osp.join(toy_root, 'VOCdevkit', 'VOC2007', 'ImageSets', 'Main', 'trainval.txt')
    with open(ids) as f:
        names = [line.strip() for line in f if line.strip()][:num]
    paths = [osp.join(toy_root, 'VOCdevkit', 'VOC2007', 'JPEGImages', f'{n}.jpg') for n in names]
    dataset = ImagePoolDataset(pool=paths, pipeline=scoring_pipeline(cfg.test_dataloader.dataset.pipeline))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)


def timed(fn, batches) -> float:
    fn(batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - start


def rss_child(toy_root: str, num: int, batch_size: int) -> None:
    cfg, model = build()
    scorer = SCORERS.build(dict(type='Entropy'))
    adapter = DetectionAdapter(model, scorer.requires, score_thr=model.bbox_head.test_cfg.score_thr)
    scores = score_pool(adapter, scorer, pool_loader(cfg, toy_root, num, batch_size), progress=False)
    assert scores.shape == (num, )
    print(json.dumps({'images': num, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=16, help='images per throughput measurement')
    parser.add_argument('--rss-pool', type=int, default=8, help='N of the memory comparison (N vs 10N)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--toy-root', default=None, help='toy VOC set at 300 px (made in a temp dir if missing)')
    parser.add_argument('--rss-child', type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    toy_root = args.toy_root or osp.join(tempfile.gettempdir(), 'mmal_bench_toy_voc_300')
    if args.rss_child is not None:
        rss_child(toy_root, args.rss_child, args.batch_size)
        return
    need = max(args.images, 10 * args.rss_pool)
    generate_toy_voc(toy_root, ToyVOCSpec(num_trainval=need, num_test=1, image_size=300, seed=0))

    cfg, model = build()
    loader = pool_loader(cfg, toy_root, args.images, args.batch_size)
    batches = list(loader)
    test_thr = model.bbox_head.test_cfg.score_thr
    with torch.no_grad():
        base_s = timed(lambda b: model.test_step(b), batches)
    print(f'SSD300 (random weights), {args.images} toy images at 300 px, batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads')
    print(f'  {"model.predict":18s} {args.images / base_s:7.2f} img/s   1.00x')
    figures = {'predict_img_s': round(args.images / base_s, 3)}
    ok = True
    for name, (scorer_cfg, adapter_cfg, target) in METHODS.items():
        scorer = SCORERS.build(scorer_cfg)
        adapter = DetectionAdapter(model, scorer.requires, score_thr=test_thr, **adapter_cfg)
        seconds = timed(lambda b: scorer(adapter(b)), batches)
        ratio = seconds / base_s
        ok &= ratio <= target
        figures[f'{name}_ratio'] = round(ratio, 3)
        print(f'  {name:18s} {args.images / seconds:7.2f} img/s   {ratio:4.2f}x  (target <= {target:.2f}x)')

    peaks = []
    for num in (args.rss_pool, 10 * args.rss_pool):
        out = subprocess.run([sys.executable, __file__, '--rss-child', str(num), '--toy-root', toy_root,
                              '--batch-size', str(args.batch_size)], capture_output=True, text=True, check=True)
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1])['peak_rss_mib'])
    growth = peaks[1] / peaks[0]
    ok &= growth <= 1.10
    print(f'  peak RSS, entropy over {args.rss_pool} images: {peaks[0]:.0f} MiB; over {10 * args.rss_pool}: '
          f'{peaks[1]:.0f} MiB ({growth:.3f}x, target <= 1.10x)')
    figures.update(rss_n_mib=round(peaks[0], 1), rss_10n_mib=round(peaks[1], 1), rss_ratio=round(growth, 3),
                   images=args.images, rss_pool=args.rss_pool, meets_targets=bool(ok))
    print(json.dumps({'bench': 'detection_acquisition', **figures}))


if __name__ == '__main__':
    main()
