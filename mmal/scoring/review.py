"""Review scores: how likely each returned label is wrong, judged by a model that had not seen it.

The model is the one trained *before* the batch was labeled (the cycle's model that picked it), so
its predictions on the batch are out of sample. Every score lies in [0, 1]; higher is more
suspicious. Designed after ObjectLab's overlooked / badly-located / swapped scores (Tkachenko et
al., 2023) with the per-class thresholds of confident learning (Northcutt et al., 2021): a
prediction counts as *confident* when its score reaches its class's threshold, the mean score of
that class's predictions that agree with a label of the class. Written from the papers (cleanlab
is AGPL-3.0; nothing of it is used here).

With ``conf(p) = min(1, score(p) / t[class(p)])`` and IoU between predictions and labels of one image:

- **missing** (per prediction): a confident prediction that no label overlaps,
  ``score(p) * (1 - max_l IoU(p, l))`` when ``score(p) >= t[class(p)]``, else 0;
- **spurious** (per label): no prediction of any class supports it,
  ``(1 - max_p IoU(p, l) * conf(p)) * recall[class(l)]``, where ``recall[c]`` is the share of the
  labels of class ``c`` that a confident prediction of ``c`` finds: a model that finds few of a
  class's labelled objects says little by missing one more;
- **wrong_class** (per label): a prediction of another class sits on it more confidently than one of
  its own class, ``max(0, best_other - best_same)`` over predictions with ``IoU >= iou_match``,
  each weighed ``IoU * conf``;
- **badly_located** (per label): its best-overlapping confident prediction of its class overlaps it
  poorly, ``conf(p*) * (1 - IoU(p*, l))`` for ``p*`` the confident same-class prediction of highest
  IoU (at least ``min_overlap``); 0 without one (that label is spurious rather);
- **image**: per type the maximum over the image's boxes, and ``combined`` the maximum of the four.

Everything is computed for many images at once on padded tensors (:class:`ReviewInputs`), in chunks:
linear in the number of images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: The per-box score types, in the order reports list them.
TYPES = ('missing', 'spurious', 'wrong_class', 'badly_located')

Boxes = Sequence[Sequence[float]]


@dataclass
class ReviewInputs:
    """Predictions and labels of ``N`` images, padded to the most boxes of an image.

    Attributes:
        pred_boxes: ``[N, P, 4]`` predicted boxes, ``x1 y1 x2 y2``.
        pred_scores: ``[N, P]`` their scores.
        pred_labels: ``[N, P]`` their classes.
        pred_valid: ``[N, P]`` which entries are predictions (the rest is padding).
        gt_boxes: ``[N, L, 4]`` the returned labels' boxes.
        gt_labels: ``[N, L]`` their classes.
        gt_valid: ``[N, L]`` which entries are labels.
    """

    pred_boxes: Tensor
    pred_scores: Tensor
    pred_labels: Tensor
    pred_valid: Tensor
    gt_boxes: Tensor
    gt_labels: Tensor
    gt_valid: Tensor

    @classmethod
    def from_lists(cls, predictions: Sequence[Tuple[Boxes, Sequence[float], Sequence[int]]],
                   labels: Sequence[Tuple[Boxes, Sequence[int]]]) -> 'ReviewInputs':
        """Pad per-image lists: ``predictions[i] = (boxes, scores, classes)``, ``labels[i] = (boxes, classes)``."""
        if len(predictions) != len(labels):
            raise ValueError(f'{len(predictions)} images of predictions for {len(labels)} of labels')
        n = len(labels)
        most_p = max([len(p[0]) for p in predictions] + [1])
        most_l = max([len(g[0]) for g in labels] + [1])
        pred_boxes, pred_scores = torch.zeros(n, most_p, 4), torch.zeros(n, most_p)
        pred_labels, pred_valid = torch.zeros(n, most_p, dtype=torch.long), torch.zeros(n, most_p, dtype=torch.bool)
        gt_boxes, gt_labels = torch.zeros(n, most_l, 4), torch.zeros(n, most_l, dtype=torch.long)
        gt_valid = torch.zeros(n, most_l, dtype=torch.bool)
        for i, ((boxes, scores, classes), (true_boxes, true_classes)) in enumerate(zip(predictions, labels)):
            if len(boxes):
                pred_boxes[i, :len(boxes)] = torch.as_tensor(boxes, dtype=torch.float32).view(-1, 4)
                pred_scores[i, :len(boxes)] = torch.as_tensor(scores, dtype=torch.float32)
                pred_labels[i, :len(boxes)] = torch.as_tensor(classes, dtype=torch.long)
                pred_valid[i, :len(boxes)] = True
            if len(true_boxes):
                gt_boxes[i, :len(true_boxes)] = torch.as_tensor(true_boxes, dtype=torch.float32).view(-1, 4)
                gt_labels[i, :len(true_boxes)] = torch.as_tensor(true_classes, dtype=torch.long)
                gt_valid[i, :len(true_boxes)] = True
        return cls(pred_boxes, pred_scores, pred_labels, pred_valid, gt_boxes, gt_labels, gt_valid)

    def __len__(self) -> int:
        return self.pred_boxes.shape[0]

    def chunk(self, start: int, stop: int) -> 'ReviewInputs':
        """Images ``start:stop``."""
        return ReviewInputs(*(getattr(self, f)[start:stop] for f in self.__dataclass_fields__))


@dataclass
class ReviewScores:
    """The review of ``N`` images (see the module docstring).

    Attributes:
        missing: ``[N, P]`` per prediction.
        spurious: ``[N, L]`` per label.
        wrong_class: ``[N, L]`` per label.
        badly_located: ``[N, L]`` per label.
        thresholds: ``[C]`` the per-class confidence thresholds used.
        recall: ``[C]`` the share of each class's labels a confident prediction of the class finds.
        pred_valid: ``[N, P]`` which prediction entries are real.
        gt_valid: ``[N, L]`` which label entries are real.
    """

    missing: Tensor
    spurious: Tensor
    wrong_class: Tensor
    badly_located: Tensor
    thresholds: Tensor
    recall: Tensor
    pred_valid: Tensor
    gt_valid: Tensor

    def label_scores(self) -> Tensor:
        """``[N, L]`` each label's most suspicious score of the three label types (0 on padding)."""
        return torch.stack([self.spurious, self.wrong_class, self.badly_located]).amax(0) * self.gt_valid

    def image_scores(self) -> Dict[str, Tensor]:
        """``{type: [N]}``: per type the maximum over the image's boxes (0 without any), and ``combined``.
        (The padding holds at least one entry per image, and every score is at least 0.)"""
        out = {'missing': (self.missing * self.pred_valid).amax(1)}
        for name in TYPES[1:]:
            out[name] = (getattr(self, name) * self.gt_valid).amax(1)
        out['combined'] = torch.stack([out[t] for t in TYPES]).amax(0)
        return out


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``[..., P, L]`` IoU of boxes ``a [..., P, 4]`` and ``b [..., L, 4]`` (``x1 y1 x2 y2``); 0 for empty boxes."""
    area_a = (a[..., 2] - a[..., 0]).clamp_min(0) * (a[..., 3] - a[..., 1]).clamp_min(0)
    area_b = (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)
    low = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    high = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (high - low).clamp_min(0).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(inter))


def class_thresholds(inputs: ReviewInputs, num_classes: int, iou_match: float = 0.5, default: float = 0.5,
                     least: float = 0.05, chunk: int = 4096) -> Tensor:
    """Per class, the mean score of its predictions that agree with a label of the class (IoU at least
    ``iou_match``): what the model's confidence looks like when it is right. ``default`` for a class
    without such a prediction; never below ``least``.

    Returns:
        ``[num_classes]`` thresholds.
    """
    total = torch.zeros(num_classes, dtype=torch.float64)
    count = torch.zeros(num_classes, dtype=torch.float64)
    for start in range(0, len(inputs), chunk):
        part = inputs.chunk(start, start + chunk)
        iou = box_iou(part.pred_boxes, part.gt_boxes)
        same = (part.pred_labels[..., :, None] == part.gt_labels[..., None, :]) & part.gt_valid[..., None, :]
        agrees = ((iou * same).amax(-1) >= iou_match) & part.pred_valid
        classes = part.pred_labels[agrees].clamp(0, num_classes - 1)
        total.index_add_(0, classes, part.pred_scores[agrees].double())
        count.index_add_(0, classes, torch.ones_like(classes, dtype=torch.float64))
    found = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, default))
    return found.float().clamp_min(least)


def class_recall(inputs: ReviewInputs, thresholds: Tensor, iou_match: float = 0.5, chunk: int = 4096) -> Tensor:
    """Per class, the share of its labels that a confident prediction of the class finds (IoU at least
    ``iou_match``); 1 for a class without labels.

    Returns:
        ``[num_classes]`` recalls.
    """
    num_classes = len(thresholds)
    found = torch.zeros(num_classes, dtype=torch.float64)
    count = torch.zeros(num_classes, dtype=torch.float64)
    for start in range(0, len(inputs), chunk):
        part = inputs.chunk(start, start + chunk)
        iou = box_iou(part.pred_boxes, part.gt_boxes)
        confident = (part.pred_scores >= thresholds[part.pred_labels.clamp(0, num_classes - 1)]) & part.pred_valid
        same = part.pred_labels[..., :, None] == part.gt_labels[..., None, :]
        hit = ((iou >= iou_match) & same & confident[..., None]).any(-2) & part.gt_valid
        classes = part.gt_labels[part.gt_valid].clamp(0, num_classes - 1)
        count.index_add_(0, classes, torch.ones_like(classes, dtype=torch.float64))
        found.index_add_(0, classes, hit[part.gt_valid].double())
    return torch.where(count > 0, found / count.clamp_min(1), torch.ones_like(found)).float()


def review(inputs: ReviewInputs, num_classes: int, thresholds: Optional[Tensor] = None, iou_match: float = 0.5,
           min_overlap: float = 0.1, chunk: int = 4096) -> ReviewScores:
    """Score every label and prediction of ``inputs`` (see the module docstring).

    Args:
        inputs: The images' predictions (of a model that had not seen their labels) and labels.
        num_classes: The number of classes.
        thresholds: ``[num_classes]`` per-class confidence thresholds; default :func:`class_thresholds`
            of ``inputs`` itself.
        iou_match: The IoU at which a prediction and a label are the same object.
        min_overlap: The least IoU of a prediction taken as a badly located version of a label.
        chunk: Images per step (memory, not results).

    Returns:
        The scores.
    """
    if thresholds is None:
        thresholds = class_thresholds(inputs, num_classes, iou_match, chunk=chunk)
    recall = class_recall(inputs, thresholds, iou_match, chunk)
    parts: Dict[str, List[Tensor]] = {name: [] for name in TYPES}
    for start in range(0, len(inputs), chunk):
        for name, value in _review_chunk(inputs.chunk(start, start + chunk), thresholds, recall, iou_match,
                                         min_overlap).items():
            parts[name].append(value)
    if not parts['missing']:  # no image
        parts = dict(missing=[inputs.pred_scores.clone()], **{t: [inputs.gt_labels.float()] for t in TYPES[1:]})
    return ReviewScores(**{name: torch.cat(values) for name, values in parts.items()}, thresholds=thresholds,
                        recall=recall, pred_valid=inputs.pred_valid, gt_valid=inputs.gt_valid)


def _review_chunk(part: ReviewInputs, thresholds: Tensor, recall: Tensor, iou_match: float,
                  min_overlap: float) -> Dict[str, Tensor]:
    iou = box_iou(part.pred_boxes, part.gt_boxes) * part.pred_valid[..., :, None] * part.gt_valid[..., None, :]
    threshold = thresholds[part.pred_labels.clamp(0, len(thresholds) - 1)]  # [n, P]
    confident = (part.pred_scores >= threshold) & part.pred_valid
    conf = (part.pred_scores / threshold).clamp(max=1.0) * part.pred_valid
    same = part.pred_labels[..., :, None] == part.gt_labels[..., None, :]  # [n, P, L]

    missing = part.pred_scores * (1 - iou.amax(-1)) * confident
    weighed = iou * conf[..., None]
    spurious = (1 - weighed.amax(-2)) * recall[part.gt_labels.clamp(0, len(recall) - 1)] * part.gt_valid
    matched = weighed * (iou >= iou_match)
    best_other = (matched * ~same).amax(-2)
    best_same = (matched * same).amax(-2)
    wrong_class = (best_other - best_same).clamp_min(0)
    candidates = torch.where(same & confident[..., None] & (iou >= min_overlap), iou, torch.full_like(iou, -1.0))
    best_iou, best = candidates.max(-2)  # [n, L]
    best_conf = conf.gather(1, best)
    badly_located = torch.where(best_iou >= 0, best_conf * (1 - best_iou), torch.zeros_like(best_iou)) * part.gt_valid
    return dict(missing=missing, spurious=spurious, wrong_class=wrong_class, badly_located=badly_located)
