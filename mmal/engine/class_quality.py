"""``ClassQualityHook``: PPAL's per-class detection quality, an EMA kept while a detector trains."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from mmdet.registry import HOOKS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from ..checkpoint import CLASS_QUALITY_ATTR
from ..outputs import SCORES

STATE_KEY = 'mmal_class_quality_state'


def num_classes_of(model: nn.Module) -> int:
    """The number of object classes of a detector's (last) box head."""
    head: Any = getattr(model, 'bbox_head', None)
    if head is None:
        roi_head = getattr(model, 'roi_head', None)
        head = getattr(roi_head, 'bbox_head', None)
        if isinstance(head, nn.ModuleList):
            head = head[-1]
    if head is None or not isinstance(getattr(head, 'num_classes', None), int):
        raise TypeError(f'{type(model).__name__} has no box head with num_classes, so no per-class quality can be '
                        'kept.')
    return head.num_classes


def detection_quality(gt_boxes: Tensor, gt_labels: Tensor, boxes: Tensor, labels: Tensor, scores: Tensor,
                      xi: float) -> Tensor:
    """PPAL's quality of each ground-truth box: the best ``score^xi * IoU^(1 - xi)`` over the detections
    of its class (0 where there is none).

    Args:
        gt_boxes: ``[G, 4]`` xyxy.
        gt_labels: ``[G]``.
        boxes, labels, scores: ``[D, 4]``, ``[D]``, ``[D]`` the detections.
        xi: Weight of the score against the IoU (PPAL: 0.6).

    Returns:
        ``[G]`` qualities in ``[0, 1]``.
    """
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return gt_boxes.new_zeros(len(gt_boxes))
    iou = bbox_overlaps(gt_boxes, boxes)
    quality = scores.clamp(0, 1)[None, :].pow(xi) * iou.pow(1 - xi)
    same = gt_labels[:, None] == labels[None, :]
    return torch.where(same, quality, torch.zeros_like(quality)).max(1).values


@HOOKS.register_module()
class ClassQualityHook(Hook):
    """Keep, while a detector trains, each class's detection quality as an EMA (PPAL's class
    difficulty, which :class:`~mmal.scoring.DifficultyCalibratedUncertainty` weights boxes by).

    Every ``interval`` iterations the first ``max_images`` images of the training batch are also
    run as ``predict`` runs them (eval mode, no gradient, through the detector's family, so any
    supported detector works; detections scoring below ``score_thr``, PPAL's 0.05, are dropped); each
    ground-truth box's quality is the best ``score^xi * IoU^(1 - xi)`` of a detection of its class,
    or 0 when the model misses it. Per class the batch mean (summed over ranks) updates
    ``ema = momentum * ema + (1 - momentum) * mean``; the quality read at acquisition is the
    bias-corrected ``ema / (1 - momentum^n)`` after ``n`` updates, and 0 for a class never seen.

    PPAL reads the quality of the positive anchors inside RetinaNet's loss; running the detector's
    own predict instead makes it the same measurement on every detector family, at the price of one
    extra inference forward of ``max_images`` images per ``interval`` iterations (an untrained
    model keeps many boxes, whose NMS makes that forward cost several training steps early on).
    The quality is attached to the model (and its EMA copy) as ``mmal_class_quality`` and saved in
    every checkpoint's ``meta``.

    Args:
        interval: Iterations between measurements.
        momentum: EMA momentum per measurement (PPAL: 0.999 per iteration, from its loss, over long
            schedules; 0.9 every 10 iterations averages over about the last 100).
        xi: Weight of the score against the IoU in the quality (PPAL: 0.6).
        max_images: Images of the batch measured.
        score_thr: Detection score threshold of the measurement.
    """
    priority = 'LOW'

    def __init__(self, interval: int = 10, momentum: float = 0.9, xi: float = 0.6, max_images: int = 8,
                 score_thr: float = 0.05) -> None:
        for name, value in (('interval', interval), ('max_images', max_images)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}.')
        if not 0 <= momentum < 1 or not 0 <= xi <= 1:
            raise ValueError(f'momentum must be in [0, 1) and xi in [0, 1], got {momentum} and {xi}.')
        self.interval, self.momentum, self.xi = interval, momentum, xi
        self.max_images, self.score_thr = max_images, score_thr
        self.ema: Optional[Tensor] = None
        self.updates: Optional[Tensor] = None
        self.quality: Optional[Tensor] = None
        self._adapter: Any = None

    # -- the measurement ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        from ..models.detection import DetectionAdapter
        model = self._model(runner)
        if self.ema is None:  # not restored from a checkpoint
            size = num_classes_of(model)
            self.ema, self.updates, self.quality = torch.zeros(size), torch.zeros(size), torch.zeros(size)
        self._adapter = DetectionAdapter(model, requires={SCORES}, score_thr=self.score_thr)
        self._attach(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if data_batch is None or not self.every_n_train_iters(runner, self.interval):
            return
        assert self.ema is not None and self.updates is not None and self.quality is not None
        model = self._model(runner)
        some = {key: value[:self.max_images] for key, value in data_batch.items()}
        try:
            detections = self._adapter.detect(some)
        finally:
            model.train()
        sums, counts = torch.zeros_like(self.ema), torch.zeros_like(self.ema)
        for sample, det in zip(some['data_samples'], detections):
            gt = sample.gt_instances
            gt_boxes = getattr(gt.bboxes, 'tensor', gt.bboxes).to(det.bboxes)
            quality = detection_quality(gt_boxes, gt.labels.to(det.labels.device), det.bboxes, det.labels, det.scores,
                                        self.xi)
            sums.index_add_(0, gt.labels.cpu().long(), quality.cpu().float())
            counts.index_add_(0, gt.labels.cpu().long(), torch.ones(len(quality)))
        if is_distributed():
            all_reduce(sums)
            all_reduce(counts)
        self.update(sums, counts)  # in place: the models hold the same tensor

    def update(self, sums: Tensor, counts: Tensor) -> None:
        """One EMA step for the classes that ``counts`` saw (``sums`` of their qualities)."""
        assert self.ema is not None and self.updates is not None and self.quality is not None
        seen = counts > 0
        mean = sums / counts.clamp_min(1)
        self.ema[seen] = self.momentum * self.ema[seen] + (1 - self.momentum) * mean[seen]
        self.updates[seen] += 1
        corrected = self.ema / (1 - self.momentum ** self.updates).clamp_min(torch.finfo(torch.float32).tiny)
        self.quality.copy_(torch.where(self.updates > 0, corrected, torch.zeros_like(corrected)))

    # -- where the quality lives -------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        if self.quality is None:
            return
        meta = checkpoint.setdefault('meta', {})
        meta[CLASS_QUALITY_ATTR] = self.quality.tolist()
        meta[STATE_KEY] = dict(ema=self.ema.tolist(), updates=self.updates.tolist())  # type: ignore[union-attr]

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        state = (checkpoint.get('meta') or {}).get(STATE_KEY)
        if state is None:
            return
        self.ema = torch.tensor(state['ema'], dtype=torch.float32)
        self.updates = torch.tensor(state['updates'], dtype=torch.float32)
        self.quality = torch.tensor(checkpoint['meta'][CLASS_QUALITY_ATTR], dtype=torch.float32)
        self._attach(runner)

    def _attach(self, runner) -> None:
        """Put the quality on the model and on its EMA copy (what acquisition scores)."""
        setattr(self._model(runner), CLASS_QUALITY_ATTR, self.quality)
        for hook in runner.hooks:
            if isinstance(hook, EMAHook) and getattr(hook, 'ema_model', None) is not None:
                setattr(hook.ema_model.module, CLASS_QUALITY_ATTR, self.quality)

    @staticmethod
    def _model(runner) -> nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model
