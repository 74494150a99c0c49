"""Learning loss for active learning (Yoo & Kweon, CVPR 2019) on mmdet single-stage detectors."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from mmdet.models.detectors import SingleStageDetector
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from .schedule import current_iter


def margin_ranking_loss(pred: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """LLAL's pairwise loss: image ``i`` of the first half of the batch is paired with image
    ``B-1-i``; the predicted losses must be ordered like the true ones, by at least ``margin``.

    Args:
        pred: ``[B]`` predicted losses.
        target: ``[B]`` true losses (no gradient).
        margin: The ranking margin.

    Returns:
        Scalar loss (0 for a batch of one image).
    """
    half = pred.shape[0] // 2
    if half == 0:
        return pred.sum() * 0
    p_i, p_j = pred[:half], pred.flip(0)[:half]
    t_i, t_j = target[:half], target.flip(0)[:half]
    sign = torch.where(t_i > t_j, 1.0, -1.0).to(pred.dtype)
    return (margin - sign * (p_i - p_j)).clamp_min(0).mean()


@MODELS.register_module()
class LossPredictionModule(BaseModule):
    """Predicts an image's loss from multi-scale features: per level global average pooling and a
    fully-connected layer with ReLU, the levels concatenated, one fully-connected layer to a scalar.

    Args:
        in_channels: Channels of each feature level.
        hidden: Width of each level's fully-connected layer.
    """

    def __init__(self, in_channels: Sequence[int], hidden: int = 128, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.levels = nn.ModuleList(nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True)) for c in in_channels)
        self.out = nn.Linear(hidden * len(in_channels), 1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        pooled = [level(f.mean(dim=(2, 3))) for level, f in zip(self.levels, feats)]
        return self.out(torch.cat(pooled, dim=1)).squeeze(1)


@MODELS.register_module()
class LLALSingleStageDetector(SingleStageDetector):
    """A single-stage detector (SSD, RetinaNet, ...) trained jointly with a loss-prediction module.

    The module's target is each image's own detection loss: the head's loss computed on that image
    alone, normalised by its own positives (not the batch mean). Its ranking loss is added as
    ``loss_llal``; after ``detach_after_iter`` training iterations the features it reads are
    detached, so from then on it no longer moves the detector.

    Args:
        loss_prediction: Config of :class:`LossPredictionModule` (``in_channels`` = the feature
            levels' channels).
        llal_margin: Margin of the ranking loss.
        llal_weight: Weight of the ranking loss.
        detach_after_iter: Training iteration (the runner's, see :mod:`.schedule`) from which the
            gradient into the detector stops.
        **kwargs: Everything ``SingleStageDetector`` takes.
    """

    def __init__(self, *args, loss_prediction: dict, llal_margin: float = 1.0, llal_weight: float = 1.0,
                 detach_after_iter: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_prediction = MODELS.build({'type': 'LossPredictionModule', **loss_prediction})
        self.llal_margin, self.llal_weight, self.detach_after_iter = llal_margin, llal_weight, detach_after_iter

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        feats = self.extract_feat(batch_inputs)
        outs = self.bbox_head(feats)
        gts, ignores, metas = unpack_gt_instances(batch_data_samples)
        losses = self.bbox_head.loss_by_feat(*outs, gts, metas, ignores)
        with torch.no_grad():
            own = torch.stack([self._image_loss(outs, gts, ignores, metas, i) for i in range(len(metas))])
        detach = self.detach_after_iter > 0 and current_iter() >= self.detach_after_iter
        pred = self.loss_prediction([f.detach() for f in feats] if detach else feats)
        losses['loss_llal'] = self.llal_weight * margin_ranking_loss(pred, own, self.llal_margin)
        return losses

    def _image_loss(self, outs: Tuple, gts, ignores, metas, i: int) -> Tensor:
        one = tuple([level[i:i + 1] for level in maps] for maps in outs)
        terms = self.bbox_head.loss_by_feat(*one, [gts[i]], [metas[i]], [ignores[i]] if ignores else None)
        total = outs[0][0].new_zeros(())
        for value in terms.values():  # SSD returns per-image lists, other heads per-level lists or tensors
            for term in (value if isinstance(value, (list, tuple)) else [value]):
                total = total + term.sum()
        return total

    def predict_loss(self, feats: Sequence[Tensor]) -> Tensor:
        """Predicted loss ``[B]`` of each image (the LossPrediction scorer's input)."""
        return self.loss_prediction(feats)
