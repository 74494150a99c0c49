"""TOOD: the head's forward returns task-aligned class scores and boxes in stride units."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
from mmdet.models.dense_heads import TOODHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from torch import Tensor, nn

from ....outputs import LAST_LAYER_INPUT, MC_PROBS
from ....registry import DETECTOR_FAMILIES
from ..distributions import score_log_probs
from .base import DenseHeadFamily
from .rows import LevelOutputs


@DETECTOR_FAMILIES.register_module()
class TOODFamily(DenseHeadFamily):
    """TOOD: the head's forward already returns task-aligned class scores ``sqrt(σ(l) · σ(p))`` and
    boxes in stride units; its ``_predict_by_feat_single`` scales and filters them. The class
    distribution splits the best score over the classes as for sigmoid heads. Its classification
    has two branches (logits and the alignment probability), so no single layer is sampled: BALD,
    BADGE and CategoryMatching are refused."""
    priority = 20
    covers = 'TOOD'
    refuses = {MC_PROBS: 'its classification has two branches, so no single layer is sampled (BALD); use Entropy, '
                         'Margin or Consistency',
               LAST_LAYER_INPUT: "its classification has two branches, so no single layer's input is read (BADGE, "
                                 'CategoryMatching); use Entropy, Margin or Consistency, or KCenterGreedy'}
    summary = "task-aligned scores split as a sigmoid head's; no single classification layer; flip by box IoU"
    reference = TOODHead
    decodes_per_level = True

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        return None

    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        return score_log_probs(logits.float().clamp_min(torch.finfo(torch.float32).tiny).log(), log_factor)

    def level_scores(self, lv: LevelOutputs) -> Tensor:
        return lv.cls  # already scores

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        return deltas * self.head.prior_generator.strides[lv.level][0]
