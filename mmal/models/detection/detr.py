"""DETR-type detectors (DETR, Deformable-DETR, DINO, ...): one candidate per decoder query.

A query's distribution is its class scores at the last decoder layer: the softmax over
``C + 1`` of DETR (background = "no object"), or the sigmoid scores of Deformable-DETR and DINO
(see :mod:`.distributions`). Detections are the head's own top-``max_per_img`` of the last layer,
with the query index kept. Monte-Carlo samples redraw dropout on the query's decoder output
before the classification layer.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import FrozenSet, List, Optional, Sequence

import torch
import torch.nn.functional as nnf
from mmdet.models.dense_heads import ConditionalDETRHead, DABDETRHead, DeformableDETRHead, DETRHead
from mmdet.models.detectors import BaseDetector, DetectionTransformer
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...outputs import LAST_LAYER_INPUT, MC_PROBS
from ...registry import DETECTOR_FAMILIES
from .distributions import sigmoid_log_probs, softmax_log_probs
from .family import DetectorFamily, FamilyPass, implements


@dataclass
class DETRPass(FamilyPass):
    """One forward of a DETR-type detector on a batch."""
    logits: Tensor  # [B, Q, C'] last-layer class logits
    boxes: Tensor  # [B, Q, 4] last-layer boxes, xyxy in input pixels (clamped), as predict decodes them
    hidden: Tensor  # [B, Q, D] last-layer decoder output (the classification layer's input)


@DETECTOR_FAMILIES.register_module()
class DETRFamily(DetectorFamily[DETRPass]):
    """DETR, Deformable-DETR, DINO and other ``DetectionTransformer`` with a ``DETRHead``."""
    covers = 'DETR, Deformable-DETR, DINO (DetectionTransformer with a DETRHead)'
    summary = 'last decoder layer per query (DETR softmax, others sigmoid); flip by box IoU'

    def __init__(self, model: BaseDetector, test_cfg: Optional[dict] = None) -> None:
        super().__init__(model, test_cfg)
        self.head = model.bbox_head
        self.cfg = self.post_cfg(self.head.test_cfg)
        self.use_sigmoid = bool(self.head.loss_cls.use_sigmoid)
        self.forward_args = set(inspect.signature(self.head.forward).parameters)

    @classmethod
    def matches(cls, model: BaseDetector) -> bool:
        head = getattr(model, 'bbox_head', None)
        # each of these predicts forwards the decoder output and keeps the last layer's top queries by
        # DETRHead._predict_by_feat_single; DDQ-DETR's predict_by_feat filters queries, Grounding DINO
        # scores against text: not claimed
        return (implements(model, 'predict', DetectionTransformer)
                and implements(head, 'predict', DETRHead, DeformableDETRHead, ConditionalDETRHead, DABDETRHead)
                and implements(head, 'predict_by_feat', DETRHead, DeformableDETRHead)
                and implements(head, '_predict_by_feat_single', DETRHead))

    def check(self, requires: FrozenSet[str]) -> None:
        super().check(requires)
        if requires & {MC_PROBS, LAST_LAYER_INPUT} and not isinstance(
                getattr(self.head, 'cls_branches', None) or getattr(self.head, 'fc_cls', None), (nn.Module, )):
            raise TypeError(f'{type(self.head).__name__} has neither cls_branches nor fc_cls, so its classification '
                            'layer cannot be sampled (BALD) nor its input read (BADGE, CategoryMatching); use '
                            'Entropy, Margin or Consistency.')

    def classifier(self, num_layers: int) -> nn.Module:
        """The layer that classifies the last decoder layer's queries."""
        if hasattr(self.head, 'cls_branches'):
            return self.head.cls_branches[num_layers - 1]
        return self.head.fc_cls

    def run(self, feats: Sequence[Tensor], samples: Sequence, detect: bool = True) -> DETRPass:
        inputs = self.model.forward_transformer(feats, samples)
        all_logits, all_boxes = self.head(**{k: v for k, v in inputs.items() if k in self.forward_args})
        hidden = inputs['hidden_states'][-1]
        logits, boxes = all_logits[-1], all_boxes[-1]
        metas = [s.metainfo for s in samples]
        decoded = []
        for b, meta in enumerate(metas):  # DETRHead._predict_by_feat_single's decoding of every query
            box = bbox_cxcywh_to_xyxy(boxes[b])
            height, width = meta['img_shape']
            box[:, 0::2] = (box[:, 0::2] * width).clamp(min=0, max=width)
            box[:, 1::2] = (box[:, 1::2] * height).clamp(min=0, max=height)
            decoded.append(box)
        xyxy = torch.stack(decoded)
        max_per_img = self.cfg.get('max_per_img', logits.shape[1])
        detections: Optional[List[InstanceData]] = [] if detect else None
        for b in range(len(metas) if detect else 0):
            assert detections is not None
            if self.use_sigmoid:
                scores, indexes = logits[b].sigmoid().view(-1).topk(max_per_img)
                labels, queries = indexes % self.head.num_classes, indexes // self.head.num_classes
            else:
                scores, labels = nnf.softmax(logits[b], dim=-1)[..., :-1].max(-1)
                scores, queries = scores.topk(max_per_img)
                labels = labels[queries]
            detections.append(InstanceData(bboxes=xyxy[b][queries], scores=scores, labels=labels, sources=queries))
        return DETRPass(detections=detections, logits=logits, boxes=xyxy, hidden=hidden)

    def num_candidates(self, p: DETRPass, image: int) -> int:
        return p.logits.shape[1]

    def distribution(self, logits: Tensor) -> Tensor:
        return sigmoid_log_probs(logits) if self.use_sigmoid else softmax_log_probs(logits)

    def log_probs(self, p: DETRPass, image: Tensor, source: Tensor) -> Tensor:
        return self.distribution(p.logits[image, source])

    def mc_log_probs(self, p: DETRPass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        hidden = p.hidden[image, source]
        layer = self.classifier(self.model.decoder.num_layers)
        return self.distribution(layer(nnf.dropout(hidden.expand(samples, *hidden.shape), dropout, True)))

    def last_layer_input(self, p: DETRPass, image: Tensor, source: Tensor) -> Tensor:
        return p.hidden[image, source]

    def candidate_boxes(self, p: DETRPass, image: int, label: Optional[int] = None) -> Tensor:
        return p.boxes[image]
