"""SSD: softmax over the classes and background; one classification conv per level."""
from __future__ import annotations

from typing import List, Optional, Sequence

from mmdet.models.dense_heads import SSDHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from torch import Tensor, nn

from ....registry import DETECTOR_FAMILIES
from .base import DenseHeadFamily
from .rows import DensePass, gather


@DETECTOR_FAMILIES.register_module()
class SSDFamily(DenseHeadFamily):
    """SSD (softmax over classes and background). Flipped predictions align by mirroring the
    anchor grid, as the published AL-SSL and CSD code does."""
    priority = 10
    flip_alignment = 'mirror'
    covers = 'SSD'
    summary = 'softmax; flip aligned by mirroring the anchor grid'
    reference = SSDHead

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        return [branch[-1] if isinstance(branch, nn.Sequential) else branch for branch in head.cls_convs]

    def mirrored_log_probs(self, p: DensePass, flipped_feats: Sequence[Tensor], image: Tensor,
                           source: Tensor) -> Tensor:
        """Log-probabilities at the same rows from the features of the flipped batch, read at the
        mirrored location of each row (its class maps mirrored back along the width)."""
        maps = self.head(flipped_feats)[0]
        return self.distribution(gather(p, maps, image, source, mirror=True), None)
