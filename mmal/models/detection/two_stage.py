"""Two-stage detectors (Faster / Mask / Cascade R-CNN): one candidate per RPN proposal.

The RoI head's softmax over ``C + 1`` of each proposal is its distribution (for Cascade R-CNN the
softmax of the stages' mean logits, as its ``predict`` computes it). Detections are the head's
own ``multiclass_nms`` of those, with the proposal index kept. Monte-Carlo samples redraw dropout
on the output of each fully-connected layer of the box head's classification path (before ``fc7``
and ``fc_cls``, as VGG-16 Faster R-CNN places it) at the kept proposals only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence

import torch
import torch.nn.functional as nnf
from mmdet.models.detectors import BaseDetector, TwoStageDetector
from mmdet.models.layers import multiclass_nms
from mmdet.models.losses import SeesawLoss
from mmdet.models.roi_heads import CascadeRoIHead, HybridTaskCascadeRoIHead, PointRendRoIHead, StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import BBoxHead, ConvFCBBoxHead
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...outputs import MC_PROBS
from ...registry import DETECTOR_FAMILIES
from .distributions import seesaw_log_probs, softmax_log_probs
from .family import DetectorFamily, FamilyPass, capture_inputs, implements, implements_all


@dataclass
class TwoStagePass(FamilyPass):
    """One forward of a two-stage detector on a batch."""
    logits: List[Tensor]  # per image [R, C+1] (stage mean for cascades)
    raw_boxes: List[Tensor]  # per image [R, C*4] (or [R, 4]) regressed boxes
    offsets: List[int]  # first row of each image in the batch's RoIs
    roi_inputs: List[Tensor]  # per stage, the box head's input [R_total, ...]
    cls_inputs: List[Tensor]  # per stage, fc_cls's input [R_total, D]
    proposals: List[Tensor] = field(default_factory=list)  # per image [R, 4] the RPN's boxes
    cache: Dict = field(default_factory=dict)


@DETECTOR_FAMILIES.register_module()
class TwoStageFamily(DetectorFamily[TwoStagePass]):
    """Faster R-CNN, Mask R-CNN (its boxes), Cascade R-CNN and other ``TwoStageDetector`` with a
    standard or cascade RoI head."""
    covers = 'Faster R-CNN, Mask R-CNN, Cascade R-CNN, HTC (RPN + standard or cascade RoI head, softmax or Seesaw)'
    summary = 'RoI softmax over C+1 (cascade: stage mean); MC dropout in the shared FCs; flip by box IoU'
    class_specific_boxes = True
    has_proposals = True

    def __init__(self, model: BaseDetector, test_cfg: Optional[dict] = None) -> None:
        super().__init__(model, test_cfg)
        self.roi_head = model.roi_head
        self.cascade = isinstance(self.roi_head, CascadeRoIHead)
        self.heads = list(self.roi_head.bbox_head) if self.cascade else [self.roi_head.bbox_head]
        self.cfg = self.post_cfg(self.roi_head.test_cfg)

    @classmethod
    def matches(cls, model: BaseDetector) -> bool:
        roi_head: Any = getattr(model, 'roi_head', None)
        if not implements(model, 'predict', TwoStageDetector):
            return False
        # the mask branch runs after the boxes; Mask Scoring R-CNN's rescales their scores there
        masks_keep_scores = not getattr(roi_head, 'with_mask', False)
        if (implements(roi_head, 'predict', CascadeRoIHead, HybridTaskCascadeRoIHead)
                and implements_all(roi_head, CascadeRoIHead, ('predict_bbox', '_refine_roi'))):
            heads = list(roi_head.bbox_head)
            masks_keep_scores = masks_keep_scores or implements(roi_head, 'predict_mask', CascadeRoIHead,
                                                                HybridTaskCascadeRoIHead)
        elif implements_all(roi_head, StandardRoIHead, ('predict', 'predict_bbox')):
            heads = [roi_head.bbox_head]
            masks_keep_scores = masks_keep_scores or implements(roi_head, 'predict_mask', StandardRoIHead,
                                                                PointRendRoIHead)
        else:  # a query-based or refining RoI head (Sparse R-CNN, Grid R-CNN, HTC, ...) predicts otherwise
            return False
        if not masks_keep_scores:
            return False
        # custom class channels: only Seesaw's activation is reproduced (V3Det's sigmoid one is no distribution)
        return all(implements_all(h, BBoxHead, ('predict_by_feat', '_predict_by_feat_single'))
                   and isinstance(getattr(h, 'fc_cls', None), nn.Linear)
                   and (not h.custom_cls_channels or type(h.loss_cls) is SeesawLoss) for h in heads)

    def check(self, requires: FrozenSet[str]) -> None:
        super().check(requires)
        if MC_PROBS in requires:
            for head in self.heads:
                if not implements(head, 'forward', ConvFCBBoxHead):
                    raise TypeError(f'Monte-Carlo dropout in the RoI head needs mmdet\'s ConvFCBBoxHead forward (e.g. '
                                    f'Shared2FCBBoxHead), got {type(head).__name__}; use a scorer without MC samples '
                                    '(Entropy, Margin, Consistency).')

    def run(self, feats: Sequence[Tensor], samples: Sequence, detect: bool = True) -> TwoStagePass:
        metas = [s.metainfo for s in samples]
        proposals = [r.bboxes for r in self.model.rpn_head.predict(feats, samples, rescale=False)]
        counts = tuple(len(p) for p in proposals)
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:  # not one proposal in the batch: predict returns no box (mmdet's empty_instances)
            return self.empty_pass(rois, len(samples), detect)
        with capture_inputs(self.heads) as roi_inputs, capture_inputs([h.fc_cls for h in self.heads]) as cls_inputs:
            if self.cascade:
                rois, cls_scores, bbox_preds = self.roi_head._refine_roi(feats, rois, metas, counts,
                                                                         **self.semantic(feats))
            else:
                out = self.roi_head._bbox_forward(feats, rois)
                rois, cls_scores = rois.split(counts, 0), out['cls_score'].split(counts, 0)
                bbox_preds = out['bbox_pred'].split(counts, 0)
        raw = self.heads[-1].predict_by_feat(rois=rois, cls_scores=cls_scores, bbox_preds=bbox_preds,
                                             batch_img_metas=metas, rcnn_test_cfg=None, rescale=False)
        num_classes = self.heads[-1].num_classes
        detections: Optional[List[InstanceData]] = [] if detect else None
        for result in raw if detect else ():
            assert detections is not None
            dets, labels, inds = multiclass_nms(result.bboxes, result.scores, self.cfg.score_thr, self.cfg.nms,
                                                self.cfg.max_per_img, box_dim=4, return_inds=True)
            detections.append(InstanceData(bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels,
                                           sources=inds // num_classes))
        offsets = torch.tensor((0, ) + counts).cumsum(0).tolist()
        return TwoStagePass(detections=detections, logits=list(cls_scores), raw_boxes=[r.bboxes for r in raw],
                            offsets=offsets, roi_inputs=list(roi_inputs), cls_inputs=list(cls_inputs),
                            proposals=proposals)

    def semantic(self, feats: Sequence[Tensor]) -> Dict[str, Any]:
        """HTC's semantic features, as its ``predict`` hands them to the box stages (else nothing)."""
        if isinstance(self.roi_head, HybridTaskCascadeRoIHead):
            return dict(semantic_feat=self.roi_head.semantic_head(feats)[1] if self.roi_head.with_semantic else None)
        return {}

    def empty_pass(self, rois: Tensor, num_images: int, detect: bool) -> TwoStagePass:
        """The pass of a batch without proposals: no candidate, no detection."""
        head = self.heads[-1]
        logits = rois.new_zeros((0, head.num_classes + (3 if head.custom_cls_channels else 1)))
        boxes = rois.new_zeros((0, 4 if head.reg_class_agnostic else 4 * head.num_classes))
        none = rois.new_zeros((0, ), dtype=torch.long)
        empty = InstanceData(bboxes=rois.new_zeros((0, 4)), scores=rois.new_zeros((0, )), labels=none, sources=none)
        return TwoStagePass(detections=[empty] * num_images if detect else None, logits=[logits] * num_images,
                            raw_boxes=[boxes] * num_images, offsets=[0] * (num_images + 1), roi_inputs=[],
                            cls_inputs=[], proposals=[rois.new_zeros((0, 4))] * num_images)

    def num_candidates(self, p: TwoStagePass, image: int) -> int:
        return p.logits[image].shape[0]

    def _rows(self, p: TwoStagePass, image: Tensor, source: Tensor) -> Tensor:
        """Rows of the batch's RoIs."""
        return torch.tensor(p.offsets[:-1], device=source.device)[image] + source

    def distribution(self, logits: Tensor) -> Tensor:
        """Log-probabilities over ``C + 1`` of RoI logits, as the box head's predict scores them: a
        softmax, or Seesaw loss's activation (``custom_cls_channels``)."""
        return seesaw_log_probs(logits) if self.heads[-1].custom_cls_channels else softmax_log_probs(logits)

    def log_probs(self, p: TwoStagePass, image: Tensor, source: Tensor) -> Tensor:
        logits = torch.cat(p.logits)[self._rows(p, image, source)]
        return self.distribution(logits)

    def mc_log_probs(self, p: TwoStagePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        if not p.roi_inputs:  # a batch without proposals
            return p.logits[0].new_zeros((samples, 0, self.heads[-1].num_classes + 1))
        rows = self._rows(p, image, source)
        logits = torch.stack([mc_cls_logits(head, inputs[rows], samples, dropout)
                              for head, inputs in zip(self.heads, p.roi_inputs)]).mean(0)
        return self.distribution(logits)

    def last_layer_input(self, p: TwoStagePass, image: Tensor, source: Tensor) -> Tensor:
        if not p.cls_inputs:  # a batch without proposals
            return p.logits[0].new_zeros((0, self.heads[-1].fc_cls.in_features))
        return p.cls_inputs[-1][self._rows(p, image, source)]

    def proposal_boxes(self, p: TwoStagePass, image: Tensor, source: Tensor) -> Tensor:
        if not p.roi_inputs:  # a batch without proposals
            return p.logits[0].new_zeros((0, 4))
        return torch.cat(p.proposals)[self._rows(p, image, source)]

    def candidate_boxes(self, p: TwoStagePass, image: int, label: Optional[int] = None) -> Tensor:
        boxes = p.raw_boxes[image]
        if boxes.shape[1] == 4 or label is None:
            return boxes[:, :4]
        return boxes[:, 4 * label:4 * label + 4]


def mc_cls_logits(head: nn.Module, roi_feats: Tensor, samples: int, p: float) -> Tensor:
    """``[T, R, C+1]`` class logits of ``ConvFCBBoxHead``'s classification path with dropout on the
    output of each of its fully-connected layers, i.e. before the second shared FC, the class FCs
    and ``fc_cls`` (where the VGG-16 Faster R-CNN has its drop6 / drop7). The layers before the
    first dropout run once for all samples (for Shared2FCBBoxHead the 12544 -> 1024 ``fc6``, most of
    the work). A head without FC layers gets dropout on the input of ``fc_cls``."""
    if not isinstance(head, ConvFCBBoxHead):
        raise TypeError(f'Monte-Carlo dropout in the RoI head needs mmdet\'s ConvFCBBoxHead (e.g. '
                        f'Shared2FCBBoxHead), got {type(head).__name__}; use a scorer without MC samples.')
    x, sampled = roi_feats, False

    def fully_connected(x: Tensor, fc: nn.Module) -> Tensor:
        nonlocal sampled
        if sampled:
            return head.relu(fc(nnf.dropout(x, p, True)))
        sampled = True  # the first FC is deterministic: run it once, then draw the samples
        x = head.relu(fc(x))
        return x.unsqueeze(0).expand(samples, *x.shape).flatten(0, 1)

    for conv in head.shared_convs:
        x = conv(x)
    if head.num_shared_fcs > 0:
        if head.with_avg_pool:
            x = head.avg_pool(x)
        x = x.flatten(1)
        for fc in head.shared_fcs:
            x = fully_connected(x, fc)
    for conv in head.cls_convs:
        x = conv(x)
    if x.dim() > 2:
        if head.with_avg_pool:
            x = head.avg_pool(x)
        x = x.flatten(1)
    for fc in head.cls_fcs:
        x = fully_connected(x, fc)
    if not sampled:
        x = x.unsqueeze(0).expand(samples, *x.shape).flatten(0, 1)
    return head.fc_cls(nnf.dropout(x, p, True)).view(samples, roi_feats.shape[0], -1)
