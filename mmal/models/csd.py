"""CSD: consistency-based semi-supervised learning for single-stage detectors (Jeong et al., 2019)."""
from __future__ import annotations

from mmdet.models.detectors import SingleStageDetector
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from torch import Tensor

from ..datasets.semi import is_labeled
from .detection import class_distribution, level_logits
from .schedule import current_iter, total_iters
from .ssl_losses import csd_consistency, csd_weight


@MODELS.register_module()
class CSDSingleStageDetector(SingleStageDetector):
    """A single-stage anchor detector (SSD) trained with CSD's consistency losses.

    Every image of a batch and its horizontal flip pass through the same network. The flipped
    outputs are mirrored back along the width (SSD's anchors at a location are flip-symmetric);
    ``loss_csd_cls`` is the symmetric KL between corresponding anchors' class distributions and
    ``loss_csd_loc`` the squared difference of their regressions with ``dx`` mirrored, both on the
    anchors whose best foreground class beats background. The supervised loss sees only the
    images flagged labeled; the consistency losses see all of them. The consistency weight ramps
    up over ``ramp_up_iters``, stays at ``consistency_weight`` and ramps down over the last
    ``ramp_down_iters`` of ``max_iters``.

    Args:
        consistency_weight: Weight of the consistency losses at full strength.
        loc_weight: Weight of the location term relative to the class term.
        max_iters: Length of the training (for the ramp-down) outside an mmengine runner; in one,
            the runner's ``max_iters`` and current iteration (:mod:`.schedule`) drive the ramps.
        ramp_up_iters: Iterations of the Gaussian ramp-up.
        ramp_down_iters: Iterations of the Gaussian ramp-down at the end.
        **kwargs: Everything ``SingleStageDetector`` takes.
    """

    def __init__(self, *args, consistency_weight: float = 1.0, loc_weight: float = 1.0, max_iters: int = 120000,
                 ramp_up_iters: int = 2000, ramp_down_iters: int = 10000, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.consistency_weight, self.loc_weight = consistency_weight, loc_weight
        self.max_iters, self.ramp_up_iters, self.ramp_down_iters = max_iters, ramp_up_iters, ramp_down_iters

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        head = self.bbox_head
        cls_maps, box_maps = head(self.extract_feat(batch_inputs))
        flip_cls, flip_box = head(self.extract_feat(batch_inputs.flip(-1)))
        labeled = [i for i, flag in enumerate(is_labeled(batch_data_samples)) if flag]
        if labeled:
            samples = [batch_data_samples[i] for i in labeled]
            gts, ignores, metas = unpack_gt_instances(samples)
            losses = head.loss_by_feat([m[labeled] for m in cls_maps], [m[labeled] for m in box_maps], gts, metas,
                                       ignores)
        else:  # an all-unlabeled batch: the supervised terms are zero, with the same keys
            zero = sum(m.sum() for m in cls_maps + box_maps) * 0
            losses = dict(loss_cls=zero, loss_bbox=zero)

        channels = head.cls_out_channels
        probs = class_distribution(level_logits(cls_maps, channels), head.use_sigmoid_cls)
        flip_probs = class_distribution(level_logits([m.flip(-1) for m in flip_cls], channels), head.use_sigmoid_cls)
        size = head.bbox_coder.encode_size
        deltas = level_logits(box_maps, size)
        flip_deltas = level_logits([m.flip(-1) for m in flip_box], size)
        cls_loss, loc_loss, _ = csd_consistency(probs, flip_probs, deltas, flip_deltas)
        weight = self.consistency_weight * csd_weight(current_iter(), self.ramp_up_iters, self.ramp_down_iters,
                                                      total_iters(self.max_iters))
        losses['loss_csd_cls'] = weight * cls_loss
        losses['loss_csd_loc'] = weight * self.loc_weight * loc_loss
        return losses
