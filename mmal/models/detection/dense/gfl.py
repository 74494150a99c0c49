"""GFL: quality-focal class scores; each side of a box is the integral of a distribution."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from mmdet.models.dense_heads import GFLHead
from mmengine.structures import InstanceData
from torch import Tensor

from ....registry import DETECTOR_FAMILIES
from .base import DenseHeadFamily, finish, keep_top
from .rows import DensePass, LevelOutputs


@DETECTOR_FAMILIES.register_module()
class GFLFamily(DenseHeadFamily):
    """GFL: quality-focal class scores, boxes from the integral of a distribution per side. The
    integral runs on all of a level's priors before they are kept, as ``GFLHead`` does."""
    priority = 20
    covers = 'GFL'
    summary = 'quality sigmoid, integral boxes; flip by box IoU'
    reference = GFLHead

    def distances(self, lv: LevelOutputs) -> Tensor:
        """``GFLHead._predict_by_feat_single``'s integral box distances of one level and image."""
        return self.head.integral(lv.box) * self.head.prior_generator.strides[lv.level][0]

    def decode(self, priors: Tensor, distances: Tensor, meta: Dict[str, Any]) -> Tensor:
        return self.head.bbox_coder.decode(self.head.anchor_center(priors), distances, max_shape=meta['img_shape'])

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        boxes, scores, labels, sources = [], [], [], []
        for lv in self.levels(p, image):
            kept_scores, kept_labels, kept_sources, filtered = keep_top(
                lv.cls.sigmoid(), lv, self.cfg, bbox_pred=self.distances(lv), priors=lv.priors)
            boxes.append(self.decode(filtered['priors'], filtered['bbox_pred'], meta))
            scores.append(kept_scores)
            labels.append(kept_labels)
            sources.append(kept_sources)
        return finish(self.head, self.cfg, meta, bboxes=torch.cat(boxes), scores=torch.cat(scores),
                      labels=torch.cat(labels), sources=torch.cat(sources))

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        key = ('boxes', image)
        if key not in p.cache:
            p.cache[key] = torch.cat([self.decode(lv.priors, self.distances(lv), p.metas[image])
                                      for lv in self.levels(p, image)])
        return p.cache[key]
