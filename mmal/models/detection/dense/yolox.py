"""YOLOX: score = max class sigmoid x objectness sigmoid, one label per point, decoded for the whole batch."""
from __future__ import annotations

from typing import List, Optional

import torch
from mmdet.models.dense_heads import YOLOXHead
from mmengine.structures import InstanceData
from torch import Tensor

from ....registry import DETECTOR_FAMILIES
from ..distributions import level_logits
from .base import DenseHeadFamily, finish
from .rows import DensePass


@DETECTOR_FAMILIES.register_module()
class YOLOXFamily(DenseHeadFamily):
    """YOLOX: score = max class sigmoid x objectness sigmoid, one label per point."""
    priority = 20
    covers = 'YOLOX'
    summary = 'sigmoid x objectness; flip by box IoU'
    reference = YOLOXHead

    def priors(self, p: DensePass) -> List[Tensor]:
        if 'priors' not in p.cache:
            cls_maps = p.maps[0]
            p.cache['priors'] = self.head.prior_generator.grid_priors(
                [m.shape[2:] for m in cls_maps], dtype=cls_maps[0].dtype, device=cls_maps[0].device, with_stride=True)
        return p.cache['priors']

    def all_boxes(self, p: DensePass) -> Tensor:
        """``YOLOXHead.predict_by_feat``'s decoded boxes of every point, ``[B, A, 4]``."""
        if 'all_boxes' not in p.cache:
            p.cache['all_boxes'] = self.head._bbox_decode(torch.cat(self.priors(p)), level_logits(p.maps[1], 4))
        return p.cache['all_boxes']

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        boxes, scores = self.all_boxes(p), level_logits(p.maps[0], self.head.cls_out_channels).sigmoid()
        objectness = level_logits(p.maps[2], 1).squeeze(-1).sigmoid()
        results = []
        for b, meta in enumerate(p.metas):
            max_scores, labels = torch.max(scores[b], 1)
            valid = objectness[b] * max_scores >= self.cfg.score_thr
            results.append(finish(self.head, self.cfg, meta, bboxes=boxes[b][valid],
                                  scores=max_scores[valid] * objectness[b][valid], labels=labels[valid],
                                  sources=valid.nonzero().squeeze(1)))
        return results

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        return self.all_boxes(p)[image]
