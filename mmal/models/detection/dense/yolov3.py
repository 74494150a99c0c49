"""YOLOv3: one map per level holds each anchor's box, objectness and class logits."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as nnf
from mmdet.models.dense_heads import YOLOV3Head
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import filter_scores_and_topk
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ....registry import DETECTOR_FAMILIES
from ..family import capture_inputs
from .base import DenseHeadFamily, finish
from .rows import DensePass


@DETECTOR_FAMILIES.register_module()
class YOLOV3Family(DenseHeadFamily):
    """YOLOv3: score = class sigmoid x objectness sigmoid (the objectness a score factor, as
    ``YOLOV3Head.predict_by_feat`` passes it). The maps are split into class, box and objectness
    views, so the dense rows, flip matching and classifier taps apply; Monte-Carlo dropout samples
    the shared prediction conv (``convs_pred``), hence class logits and objectness together."""
    priority = 20
    covers = 'YOLOv3'
    summary = 'sigmoid x objectness (one map per level); MC dropout in the prediction conv; flip by box IoU'
    reference = YOLOV3Head

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        convs = getattr(head, 'convs_pred', None)
        return list(convs) if isinstance(convs, nn.ModuleList) and all(type(c) is nn.Conv2d for c in convs) else None

    def run(self, feats: Sequence[Tensor], samples: Sequence, detect: bool = True) -> DensePass:
        head = self.head
        with capture_inputs(self.classifiers or []) as calls:
            pred_maps = head(feats)[0]
        priors = head.num_base_priors
        views = [m.view(m.shape[0], priors, head.num_attrib, *m.shape[2:]) for m in pred_maps]

        def split(lo: int, hi: int) -> List[Tensor]:
            return [v[:, :, lo:hi].reshape(v.shape[0], -1, *v.shape[3:]) for v in views]

        shapes = [(m.shape[2], m.shape[3], priors) for m in pred_maps]
        p = DensePass(detections=None, maps=(split(5, head.num_attrib), split(0, 4), split(4, 5)),
                      taps=list(calls) if len(calls) == len(pred_maps) else None, shapes=shapes,
                      metas=[s.metainfo for s in samples], cache=dict(raw=list(pred_maps)))
        if detect:
            p.detections = self.postprocess(p)
        return p

    def all_boxes(self, p: DensePass) -> Tensor:
        """``YOLOV3Head.predict_by_feat``'s decoded boxes of every anchor, ``[B, A, 4]``."""
        if 'all_boxes' not in p.cache:
            head, raw = self.head, p.cache['raw']
            flat = torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, head.num_attrib) for m in raw], dim=1)
            deltas = torch.cat([flat[..., :2].sigmoid(), flat[..., 2:4]], dim=-1)
            strides = torch.cat([flat.new_tensor(stride).expand(h * w * n)
                                 for stride, (h, w, n) in zip(head.featmap_strides, p.shapes)])
            p.cache['flat'] = flat
            p.cache['all_boxes'] = head.bbox_coder.decode(torch.cat(self.priors(p)), deltas, strides.unsqueeze(-1))
        return p.cache['all_boxes']

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        cfg = self.cfg
        boxes = self.all_boxes(p)
        flat = p.cache['flat']
        objectness, scores = flat[..., 4].sigmoid(), flat[..., 5:].sigmoid()
        results = []
        for b, meta in enumerate(p.metas):
            index = torch.arange(boxes.shape[1], device=boxes.device)
            image_boxes, image_scores, image_objectness = boxes[b], scores[b], objectness[b]
            conf_thr = cfg.get('conf_thr', -1)
            if conf_thr > 0:
                confident = image_objectness >= conf_thr
                image_boxes, image_scores = image_boxes[confident], image_scores[confident]
                image_objectness, index = image_objectness[confident], index[confident]
            kept_scores, labels, keep, _ = filter_scores_and_topk(image_scores, cfg.get('score_thr', 0),
                                                                  cfg.get('nms_pre', -1))
            results.append(finish(self.head, cfg, meta, scores=kept_scores, labels=labels, bboxes=image_boxes[keep],
                                  score_factors=image_objectness[keep], sources=index[keep]))
        return results

    def mc_log_probs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        if len(source) == 0:
            return super().mc_log_probs(p, image, source, samples, dropout)
        out = self.sampled_outputs(p, image, source, samples, dropout)  # [T, M, 5 + C]: box, objectness, classes
        return self.distribution(out[..., 5:], nnf.logsigmoid(out[..., 4]))

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        return self.all_boxes(p)[image]
