"""Speed of the label review (mmal.scoring.review) given predictions: N images x 20 predictions x 20
labels, against a plain IoU pass over the same boxes measured in the same run.

    python tools/benchmarks/bench_review_speed.py [--images 25000 50000 100000] [--boxes 20] [--threads 1]

Prints, per size, the CPU seconds (process time) of padding per-image lists into inputs, of the review
(thresholds and the four scores) and of the IoU pass alone, the ratio review / IoU, and how the
review's time grows with N (linear: time(N) / time(N0) close to N / N0). Ends with a JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
from mmal.scoring.review import ReviewInputs, box_iou, review


def inputs(n: int, boxes: int, classes: int = 20, seed: int = 0) -> ReviewInputs:
    """Random padded inputs: every image with ``boxes`` predictions and labels (half of them overlapping)."""
    gen = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, boxes, 2, generator=gen) * 500
    size = 10 + torch.rand(n, boxes, 2, generator=gen) * 100
    gt = torch.cat([corner, corner + size], -1)
    jitter = torch.randn(n, boxes, 4, generator=gen) * 5
    pred = torch.where(torch.rand(n, boxes, 1, generator=gen) < 0.5, gt + jitter, gt.roll(1, 1) + 300)
    ones = torch.ones(n, boxes, dtype=torch.bool)
    return ReviewInputs(pred, torch.rand(n, boxes, generator=gen), torch.randint(0, classes, (n, boxes), generator=gen),
                        ones, gt, torch.randint(0, classes, (n, boxes), generator=gen), ones.clone())


def iou_pass(x: ReviewInputs, chunk: int = 4096) -> float:
    """A plain pass computing every image's prediction x label IoU (the floor of any such review)."""
    total = 0.0
    for start in range(0, len(x), chunk):
        total += float(box_iou(x.pred_boxes[start:start + chunk], x.gt_boxes[start:start + chunk]).sum())
    return total


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, nargs='+', default=[25000, 50000, 100000])
    parser.add_argument('--boxes', type=int, default=20)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in args.images:
        x = inputs(n, args.boxes)
        plain = cpu(lambda: iou_pass(x))
        scored = cpu(lambda: review(x, num_classes=20))
        preds = list(zip(x.pred_boxes.tolist(), x.pred_scores.tolist(), x.pred_labels.tolist()))
        labels = list(zip(x.gt_boxes.tolist(), x.gt_labels.tolist()))
        padded = cpu(lambda: ReviewInputs.from_lists(preds, labels))
        rows.append(dict(images=n, review_cpu_s=round(scored, 2), iou_cpu_s=round(plain, 2),
                         ratio=round(scored / plain, 2), from_lists_cpu_s=round(padded, 2)))
        print(f'{n:>7} images x {args.boxes} boxes: review {scored:6.2f} CPU s, IoU pass {plain:6.2f} CPU s, '
              f'ratio {scored / plain:4.1f}; padding per-image lists {padded:6.2f} CPU s', flush=True)
    first = rows[0]
    for row in rows[1:]:
        row['growth'] = round(row['review_cpu_s'] / first['review_cpu_s'], 2)
        print(f'{row["images"]} / {first["images"]} images = {row["images"] / first["images"]:.1f}x: review time '
              f'{row["growth"]:.2f}x')
    print(json.dumps(dict(threads=args.threads, boxes=args.boxes, rows=rows)))


if __name__ == '__main__':
    main()
