"""PAA: score = sqrt(class sigmoid x IoU sigmoid), class-wise NMS with score voting."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from mmdet.models.dense_heads import PAAHead
from mmdet.models.layers import multiclass_nms
from mmengine.structures import InstanceData
from torch import Tensor

from ....registry import DETECTOR_FAMILIES
from ..distributions import sigmoid_log_probs
from .base import DenseHeadFamily
from .rows import DensePass


@DETECTOR_FAMILIES.register_module()
class PAAFamily(DenseHeadFamily):
    """PAA: its ``_predict_by_feat_single`` keeps the top priors by the geometric mean of class and
    IoU scores, then runs class-wise NMS and score voting itself; the source index follows each box."""
    priority = 20
    covers = 'PAA'
    summary = 'sqrt(sigmoid x IoU), score voting; flip by box IoU'
    reference = PAAHead

    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        return sigmoid_log_probs(logits, log_factor, power=0.5)

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        head, cfg = self.head, self.cfg
        nms_pre = cfg.get('nms_pre', -1)
        boxes, scores, factors, sources = [], [], [], []
        for lv in self.levels(p, image):
            level_scores, deltas, level_priors = lv.cls.sigmoid(), lv.box, lv.priors
            assert lv.factor is not None  # PAA's IoU branch
            factor = lv.factor.sigmoid()
            index = torch.arange(len(factor), device=factor.device)
            if 0 < nms_pre < level_scores.shape[0]:
                top = (level_scores * factor[:, None]).sqrt().max(dim=1)[0].topk(nms_pre)[1]
                level_priors, deltas, level_scores, factor, index = (
                    level_priors[top], deltas[top], level_scores[top], factor[top], index[top])
            boxes.append(head.bbox_coder.decode(level_priors, deltas, max_shape=meta['img_shape']))
            scores.append(level_scores)
            factors.append(factor)
            sources.append(index + lv.start)
        all_boxes, all_scores = torch.cat(boxes), torch.cat(scores)
        all_factors, all_sources = torch.cat(factors), torch.cat(sources)
        nms_scores = (torch.cat([all_scores, all_scores.new_zeros(len(all_scores), 1)], dim=1)
                      * all_factors[:, None]).sqrt()
        dets, labels, inds = multiclass_nms(all_boxes, nms_scores, cfg.score_thr, cfg.nms, cfg.max_per_img,
                                            score_factors=None, return_inds=True)
        kept = all_sources[inds // head.cls_out_channels]
        if head.with_score_voting and len(dets) > 0:
            # score voting lists the detections class by class, each class in NMS order
            order = torch.cat([(labels == c).nonzero().squeeze(1) for c in range(head.cls_out_channels)])
            dets, labels = head.score_voting(dets, labels, all_boxes, nms_scores, cfg.score_thr)
            kept = kept[order]
        return InstanceData(bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels, sources=kept)
