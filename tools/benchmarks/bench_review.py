"""Label review on the toy VOC set: does mmal's review find the errors a noisy annotator made, as well
as cleanlab's object-detection scores on the same predictions, and how much of the mAP lost to the
noise does re-reviewing the most suspicious images recover?

    python tools/benchmarks/bench_review.py [--seeds 3] [--jobs 2] [--work-dir work_dirs/bench_review]
                                            [--cleanlab .venv-cleanlab/bin/python] [--iters 500]
                                            [--max-objects 3 --data-seed 0] [--digits] [--review-only]

Per seed (its own split, noise and training seed), one process with one torch thread:

1. train the toy SSD (configs/demo/ssd_toyvoc_al.py's schedule) on ``A``, 300 random pool images,
   with their true labels: the model that picks and then reviews the next batch;
2. ``B``, 200 other pool images, comes back from ``NoisyAnnotator(drop=0.1, swap=0.1, shift=0.1)``;
   the model predicts on ``B`` (it never saw it), ``mmal.scoring.review`` scores the returned labels,
   and cleanlab 2.7.1 (installed into its own environment, ``--cleanlab``; never a dependency of mmal)
   scores the same labels and predictions: ranking average precision per error type, of images
   (drop: missing, swap: wrong_class, shift: badly_located, any: combined) and of label boxes (swap,
   shift);
3. train on ``A + B`` with the true labels of ``B``, with the noisy ones, and with the noisy ones
   except the top 5 % / 10 % of ``B``'s images by the review's combined score (re-reviewed: their
   true labels restored), and as a control the same numbers of images of B chosen at random:
   the test mAP of each.

``--max-objects`` and ``--data-seed`` generate another toy set (e.g. crowded images: ``--max-objects 6
--data-seed 1 --toy-root data/toy_voc_crowded``); ``--digits`` runs on real handwriting instead
(:mod:`mmal.datasets.digits_voc`, ``configs/demo/ssd_digitsvoc_al.py``); ``--review-only`` stops
after step 2. Prints a
table of mean +- std over the seeds and ends with a JSON line of every figure.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import os.path as osp
import random
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
CONFIG = osp.join(ROOT, 'configs', 'demo', 'ssd_toyvoc_al.py')
#: ``--digits``: the same schedule on real handwriting (mmal.datasets.digits_voc).
DIGITS_CONFIG = osp.join(ROOT, 'configs', 'demo', 'ssd_digitsvoc_al.py')
NOISE = dict(drop=0.1, swap=0.1, shift=0.1)
TYPE_SCORE = dict(drop='missing', swap='wrong_class', shift='badly_located')
CLEANLAB_SCORE = dict(drop='compute_overlooked_box_scores', swap='compute_swap_box_scores',
                      shift='compute_badloc_box_scores')
CLEANLAB_SCRIPT = '''
import json, sys
import numpy as np
from cleanlab.object_detection import rank
data = json.load(open(sys.argv[1]))
C = data["num_classes"]
labels = [dict(bboxes=np.array(g["boxes"], dtype=float).reshape(-1, 4), labels=np.array(g["labels"], dtype=int))
          for g in data["labels"]]
predictions = []
for p in data["predictions"]:
    per_class = [np.zeros((0, 5)) for _ in range(C)]
    for box, score, label in zip(p["boxes"], p["scores"], p["labels"]):
        per_class[label] = np.vstack([per_class[label], np.array(box + [score])[None]])
    predictions.append(np.array(per_class + [None], dtype=object)[:-1])
out = dict(quality=rank.get_label_quality_scores(labels, predictions, verbose=False).tolist())
for name in ("compute_overlooked_box_scores", "compute_swap_box_scores", "compute_badloc_box_scores"):
    boxes = getattr(rank, name)(labels=labels, predictions=predictions)
    out[name] = dict(image=rank.pool_box_scores_per_image(boxes).tolist(),
                     boxes=[np.nan_to_num(np.asarray(b, dtype=float), nan=1.0).tolist() for b in boxes])
json.dump(out, open(sys.argv[2], "w"))
'''


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Ranking average precision: the mean, over the positives, of the precision at each one's rank
    (ties broken against the positives, so that a constant score earns only the base rate)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], positive[i]))
    hits, total = 0, 0.0
    for rank, i in enumerate(order, 1):
        if positive[i]:
            hits += 1
            total += hits / rank
    return total / max(1, sum(positive))


def training_key(indices: List[int], seed: int, iters: int, labels_file: str | None) -> str:
    """What decides a training's outcome: its images, their labels, the seed and the schedule."""
    labels = open(labels_file).read() if labels_file else ''
    return hashlib.sha256(json.dumps([indices, seed, iters, labels]).encode()).hexdigest()


def train_and_test(cfg: Any, pool_cfg: dict, indices: List[int], work_dir: str, seed: int,
                   labels_file: str | None = None) -> tuple:
    """Train the config on pool ``indices`` (labels from ``labels_file`` where given); the trained model
    (eval mode) and its test mAP. A training done before with the same key (``bench.json``) is reused."""
    from mmdet.registry import MODELS
    from mmengine.runner import Runner

    from mmal.active.runner_config import cycle_config
    from mmal.checkpoint import load_weights
    os.makedirs(work_dir, exist_ok=True)
    iters = cfg.train_cfg.max_iters
    key = training_key(indices, seed, iters, labels_file)
    done = osp.join(work_dir, 'bench.json')
    checkpoint = osp.join(work_dir, 'train', f'iter_{iters}.pth')
    found = json.load(open(done)) if osp.isfile(done) else {}
    if found.get('key') != key or not osp.isfile(checkpoint):
        labeled = osp.join(work_dir, 'labeled.json')
        with open(labeled, 'w') as f:
            json.dump(dict(indices=indices), f)
        data = pool_cfg if labels_file is None else dict(type='Relabeled', dataset=pool_cfg, labels_file=labels_file)
        runner = Runner.from_cfg(cycle_config(cfg, osp.basename(work_dir), data, work_dir, labeled, seed,
                                              progress=False))
        runner.train()
        found = dict(key=key, map=float(runner.test()['pascal_voc/mAP']))
        with open(done, 'w') as f:
            json.dump(found, f)
    model = MODELS.build(cfg.model)
    load_weights(model, checkpoint)
    return model.eval(), found['map']


def one_seed(seed: int, data_root: str, work_dir: str, cleanlab: str, iters: int,
             review_only: bool = False, config: str = CONFIG) -> Dict[str, Any]:
    """Steps 1-3 of the module docstring for one seed; returns its figures."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmal.active.annotator import NoisyAnnotator
    from mmal.active.runner_config import with_pipeline
    from mmal.datasets.errors import build_dataset
    from mmal.engine.acquisition import predict_boxes
    from mmal.engine.hooks import scoring_pipeline
    from mmal.scoring.review import ReviewInputs, review
    torch.set_num_threads(1)
    cfg = Config.fromfile(config)
    for loader in ('train_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.merge_from_dict(dict(log_level='WARNING', val_cfg=None, val_dataloader=None, val_evaluator=None))
    cfg.train_cfg.max_iters = iters
    cfg.param_scheduler[-1].update(end=iters, T_max=iters)
    cfg.default_hooks.checkpoint.interval = iters
    init_default_scope('mmdet')
    pool_cfg = cfg.train_dataloader.dataset.to_dict()
    pool = build_dataset(pool_cfg)
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    first, batch = sorted(order[:300]), sorted(order[300:500])
    classes = list(pool.metainfo['classes'])
    out: Dict[str, Any] = dict(seed=seed)

    model, out['map_first'] = train_and_test(cfg, pool_cfg, first, osp.join(work_dir, 'first'), seed)
    scoring = build_dataset(with_pipeline(pool_cfg, scoring_pipeline(cfg.test_dataloader.dataset.pipeline)))
    found = predict_boxes(model, scoring, threshold=0.05, indices=batch)
    annotator = NoisyAnnotator(**NOISE, seed=seed)
    returned, changes = {}, []
    for index in batch:
        returned[index], changed = annotator.annotate(index, pool.get_data_info(index), len(classes))
        changes += changed
    labels_file = osp.join(work_dir, 'noisy.json')
    with open(labels_file, 'w') as f:
        json.dump(dict(instances={str(i): returned[i] for i in batch}), f)

    # -- the review and cleanlab, on the same predictions and labels -------------------------------------
    preds = [found.get(i, ([], [], [])) for i in batch]
    labels = [([inst['bbox'] for inst in returned[i]], [inst['bbox_label'] for inst in returned[i]]) for i in batch]
    scores = review(ReviewInputs.from_lists(preds, labels), len(classes))
    images = {k: v.tolist() for k, v in scores.image_scores().items()}
    with tempfile.TemporaryDirectory() as tmp:
        with open(osp.join(tmp, 'in.json'), 'w') as f:
            json.dump(dict(num_classes=len(classes),
                           predictions=[dict(boxes=b, scores=s, labels=lab) for b, s, lab in preds],
                           labels=[dict(boxes=b, labels=lab) for b, lab in labels]), f)
        proc = subprocess.run([cleanlab, '-c', CLEANLAB_SCRIPT, osp.join(tmp, 'in.json'), osp.join(tmp, 'out.json')],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f'cleanlab failed: {proc.stderr[-2000:]}')
        with open(osp.join(tmp, 'out.json')) as f:
            theirs = json.load(f)
    position = {index: n for n, index in enumerate(batch)}
    kinds_of: List[set] = [set() for _ in batch]
    box_kind: List[Dict[int, str]] = [{} for _ in batch]  # returned box position -> the error it carries
    for change in changes:
        kinds_of[position[change['index']]].add(change['kind'])
    for n, index in enumerate(batch):
        dropped = sorted(c['box'] for c in changes if c['index'] == index and c['kind'] == 'drop')
        for c in changes:
            if c['index'] == index and c['kind'] != 'drop':
                box_kind[n][c['box'] - sum(d < c['box'] for d in dropped)] = c['kind']
    ap: Dict[str, Dict[str, float]] = {}
    for kind, ours in TYPE_SCORE.items():
        positive = [kind in k for k in kinds_of]
        ap[f'images {kind}'] = dict(mmal=average_precision(images[ours], positive),
                                    cleanlab=average_precision([1 - s for s in theirs[CLEANLAB_SCORE[kind]]['image']],
                                                               positive),
                                    base=sum(positive) / len(positive))
    positive = [bool(k) for k in kinds_of]
    ap['images any'] = dict(mmal=average_precision(images['combined'], positive),
                            cleanlab=average_precision([1 - s for s in theirs['quality']], positive),
                            base=sum(positive) / len(positive))
    for kind in ('swap', 'shift'):  # label boxes: the returned boxes that this error changed
        ours_box, theirs_box, positive = [], [], []
        name = TYPE_SCORE[kind]
        for n, index in enumerate(batch):
            for box in range(len(returned[index])):
                positive.append(box_kind[n].get(box) == kind)
                ours_box.append(float(getattr(scores, name)[n, box]))
                theirs_box.append(1 - theirs[CLEANLAB_SCORE[kind]]['boxes'][n][box])
        ap[f'boxes {kind}'] = dict(mmal=average_precision(ours_box, positive),
                                   cleanlab=average_precision(theirs_box, positive),
                                   base=sum(positive) / max(1, len(positive)))
    out['ap'] = ap
    out['changes'] = {k: sum(c['kind'] == k for c in changes) for k in NOISE}
    out['boxes'] = sum(len(pool.get_data_info(i)['instances']) for i in batch)
    out['shift_iou'] = statistics.fmean(c['iou'] for c in changes if c['kind'] == 'shift') if any(
        c['kind'] == 'shift' for c in changes) else None

    if review_only:
        return out

    # -- what the noise costs, and what re-reviewing the most suspicious images recovers -----------------
    both = sorted(first + batch)
    _, out['map_clean'] = train_and_test(cfg, pool_cfg, both, osp.join(work_dir, 'clean'), seed)
    _, out['map_noisy'] = train_and_test(cfg, pool_cfg, both, osp.join(work_dir, 'noisy'), seed, labels_file)
    ranked = sorted(range(len(batch)), key=lambda n: -images['combined'][n])
    shuffled = list(range(len(batch)))
    random.Random(seed + 1).shuffle(shuffled)
    for share in (5, 10):
        count = round(len(batch) * share / 100)
        for how, chosen in (('review', ranked[:count]), ('random', shuffled[:count])):
            fixed = {str(batch[n]): returned[batch[n]] for n in range(len(batch)) if n not in set(chosen)}
            path = osp.join(work_dir, f'fixed_{how}{share}.json')
            with open(path, 'w') as f:
                json.dump(dict(instances=fixed), f)
            out[f'fixed_{how}{share}_errors'] = sum(bool(kinds_of[n]) for n in chosen)
            _, out[f'map_{how}{share}'] = train_and_test(cfg, pool_cfg, both, osp.join(work_dir, f'{how}{share}'),
                                                         seed, path)
    return out


def run_seed(seed: int, args: argparse.Namespace, data_root: str) -> Dict[str, Any]:
    """:func:`one_seed` in its own process with one torch thread (its result as a JSON file)."""
    work = osp.join(args.work_dir, f'seed{seed}')
    result = osp.join(work, 'result.json')
    if not osp.isfile(result):
        os.makedirs(work, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
        code = (f'import json, sys; sys.path.insert(0, {ROOT!r}); sys.argv = ["bench_review"]; '
                f'from tools.benchmarks.bench_review import one_seed; '
                f'json.dump(one_seed({seed}, {data_root!r}, {work!r}, {args.cleanlab!r}, {args.iters}, '
                f'{args.review_only}, {DIGITS_CONFIG if args.digits else CONFIG!r}), '
                f'open({result!r}, "w"))')
        proc = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f'seed {seed} failed:\n{proc.stderr[-3000:]}')
    with open(result) as f:
        return json.load(f)


def mean_std(values: List[float]) -> str:
    return f'{statistics.fmean(values):.3f} +- {statistics.stdev(values) if len(values) > 1 else 0:.3f}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--iters', type=int, default=500, help='training iterations of every model')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_review'))
    parser.add_argument('--toy-root', help='the data (default data/toy_voc, or data/digits_voc with --digits)')
    parser.add_argument('--max-objects', type=int, default=3, help='the data set\'s most objects per image')
    parser.add_argument('--data-seed', type=int, default=0, help='the toy set\'s generator seed')
    parser.add_argument('--review-only', action='store_true', help='rank errors only: no mAP trainings')
    parser.add_argument('--digits', action='store_true',
                        help='real handwriting instead of the toy shapes (mmal.datasets.digits_voc, up to '
                             '--max-objects a scan-made image; --toy-root default data/digits_voc)')
    parser.add_argument('--cleanlab', default=osp.join(ROOT, '.venv-cleanlab', 'bin', 'python'),
                        help='a Python with cleanlab installed (python -m venv .venv-cleanlab && '
                             '.venv-cleanlab/bin/pip install cleanlab==2.7.1)')
    args = parser.parse_args()
    if not osp.isfile(args.cleanlab):
        sys.exit(f'error: {args.cleanlab} does not exist; install cleanlab into its own environment (see --help).')
    if args.digits:
        from mmal.datasets.digits_voc import generate_digits_voc
        data_root = generate_digits_voc(args.toy_root or osp.join(ROOT, 'data', 'digits_voc'),
                                        max_objects=args.max_objects, seed=args.data_seed)
    else:
        from mmal.datasets import ToyVOCSpec, generate_toy_voc
        data_root = generate_toy_voc(args.toy_root or osp.join(ROOT, 'data', 'toy_voc'),
                                     ToyVOCSpec(max_objects=args.max_objects, seed=args.data_seed))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: run_seed(s, args, data_root), reversed(range(args.seeds))))
    results.sort(key=lambda r: r['seed'])
    data = 'digits' if args.digits else 'toy'
    print(f'\nlabel review on {data} VOC, noise {NOISE}, {len(results)} seeds (300 clean + 200 returned images each)')
    print(f'{"ranking AP":<16} {"mmal review":>16} {"cleanlab 2.7.1":>16} {"base rate":>10}')
    for key in results[0]['ap']:
        print(f'{key:<16} {mean_std([r["ap"][key]["mmal"] for r in results]):>16} '
              f'{mean_std([r["ap"][key]["cleanlab"] for r in results]):>16} '
              f'{statistics.fmean(r["ap"][key]["base"] for r in results):>10.3f}')
    if args.review_only:
        print(json.dumps(results))
        return
    print(f'\n{"test mAP x100":<34} {"mean +- std":>14}  per seed')
    rows = [('300 clean (the reviewing model)', 'map_first'), ('+200 true labels', 'map_clean'),
            ('+200 noisy labels', 'map_noisy'), ('+200 noisy, top 5% re-reviewed', 'map_review5'),
            ('+200 noisy, 5% at random fixed', 'map_random5'), ('+200 noisy, top 10% re-reviewed', 'map_review10'),
            ('+200 noisy, 10% at random fixed', 'map_random10')]
    for name, key in rows:
        values = [100 * r[key] for r in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0
        print(f'{name:<34} {statistics.fmean(values):>6.1f} +- {spread:>4.1f}  {" ".join(f"{v:.1f}" for v in values)}')
    for share in (5, 10):
        lost = [r['map_clean'] - r['map_noisy'] for r in results]
        back = [r[f'map_review{share}'] - r['map_noisy'] for r in results]
        print(f'top {share}%: recovers {100 * sum(back) / max(1e-9, sum(lost)):.0f}% of the mAP lost on average; '
              f'images with an error among those re-reviewed: '
              f'{[r[f"fixed_review{share}_errors"] for r in results]} (random: '
              f'{[r[f"fixed_random{share}_errors"] for r in results]})')
    print(json.dumps(results))


if __name__ == '__main__':
    main()
