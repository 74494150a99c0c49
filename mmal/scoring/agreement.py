"""How much two models agree on unlabeled images: a performance signal that needs no labels.

Stabilising predictions (Bloodgood and Vijay-Shanker, 2009) stops active learning once successive
models agree on a fixed *stop set* of unlabeled images. For classification the agreement is Cohen's
kappa of the two models' predicted classes. For detection, adapted here, it is the mean average
precision of one model's boxes scored against the other's confident boxes as if they were labels
(VOC-style, all-point interpolation, IoU 0.5): 1 when both find the same objects with the same classes.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .review import box_iou

#: One image's detections: ``(boxes [n, 4] x1 y1 x2 y2, scores [n], labels [n])`` as lists or tensors.
Detections = Tuple[Sequence, Sequence, Sequence]


def cohen_kappa(a: Tensor, b: Tensor, num_classes: int) -> float:
    """Cohen's kappa of two label vectors (1: identical; 0: as chance; 1.0 when both are constant and equal)."""
    if len(a) == 0:
        return 1.0
    joint = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    joint.index_put_((a.long(), b.long()), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    joint /= len(a)
    observed = float(joint.diagonal().sum())
    expected = float((joint.sum(0) * joint.sum(1)).sum())
    return 1.0 if expected >= 1 else (observed - expected) / (1 - expected)


def detection_agreement(reference: Sequence[Detections], predicted: Sequence[Detections], num_classes: int,
                        score_thr: float = 0.3, iou: float = 0.5, weights: Optional[Sequence[float]] = None) -> float:
    """The mAP of ``predicted`` against ``reference``'s boxes scoring at least ``score_thr`` as labels,
    over the classes the reference finds (as VOC's mAP is over the classes the labels hold); without
    any reference box, 1.0 when ``predicted`` has no box above ``score_thr`` either, else 0.0.

    Args:
        reference: Per image, the detections taken as labels (the previous model's).
        predicted: Per image, the detections scored (the current model's), all kept boxes.
        num_classes: The number of classes.
        score_thr: The least score of a reference box taken as a label.
        iou: The IoU at which a predicted box finds a reference box.
        weights: Per image, how many images of the population it stands for (default 1 each): its
            boxes and hits count that many times (an importance-weighted, Horvitz-Thompson mAP).
    """
    aps = []
    weights = [1.0] * len(reference) if weights is None else list(weights)
    for c in range(num_classes):
        found, total = [], 0.0
        for ref, pred, weight in zip(reference, predicted, weights):
            ref_boxes, ref_scores, ref_labels = (torch.as_tensor(x, dtype=torch.float32) for x in ref)
            boxes, scores, labels = (torch.as_tensor(x, dtype=torch.float32) for x in pred)
            truth = ref_boxes.view(-1, 4)[(ref_labels == c) & (ref_scores >= score_thr)]
            mine = labels == c
            order = scores[mine].argsort(descending=True)
            candidates, ranked = boxes.view(-1, 4)[mine][order], scores[mine][order]
            total += weight * len(truth)
            taken = torch.zeros(len(truth), dtype=torch.bool)
            overlaps = box_iou(candidates, truth) if len(truth) and len(candidates) else None
            for k in range(len(candidates)):  # greedy, best score first, as VOC's evaluation
                hit = False
                if overlaps is not None:
                    free = torch.where(taken, torch.full_like(overlaps[k], -1.0), overlaps[k])
                    best = int(free.argmax())
                    if free[best] >= iou:
                        taken[best], hit = True, True
                found.append((float(ranked[k]), hit, weight))
        if total == 0:  # as VOC's mAP: over the classes the labels (here the reference) hold
            continue
        found.sort(key=lambda f: -f[0])
        counts = torch.tensor([w for _, _, w in found], dtype=torch.float64)
        tp = (torch.tensor([h for _, h, _ in found], dtype=torch.float64) * counts).cumsum(0)
        precision = tp / counts.cumsum(0)
        recall = tp / total
        aps.append(_area(recall, precision))
    if aps:
        return sum(aps) / len(aps)
    confident = sum(int((torch.as_tensor(p[1], dtype=torch.float32) >= score_thr).sum()) for p in predicted)
    return 1.0 if confident == 0 else 0.0  # neither finds anything: agree; only the current one does: disagree


def _area(recall: Tensor, precision: Tensor) -> float:
    """The area under the precision-recall curve with precision made monotone (VOC 2010+)."""
    r = torch.cat([torch.zeros(1, dtype=recall.dtype), recall, torch.ones(1, dtype=recall.dtype)])
    p = torch.cat([torch.zeros(1, dtype=precision.dtype), precision, torch.zeros(1, dtype=precision.dtype)])
    p = p.flip(0).cummax(0).values.flip(0)
    steps = (r[1:] != r[:-1]).nonzero().squeeze(1)
    return float(((r[steps + 1] - r[steps]) * p[steps + 1]).sum())
