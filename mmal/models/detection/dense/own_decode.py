"""Heads that decode each level's boxes with their own ``_bbox_decode``: FoveaBox and RepPoints."""
from __future__ import annotations

from typing import Any, ClassVar, Dict

from mmdet.models.dense_heads import FoveaHead, RepPointsHead
from torch import Tensor

from ....registry import DETECTOR_FAMILIES
from .base import DenseHeadFamily
from .rows import LevelOutputs


class OwnDecodeFamily(DenseHeadFamily):
    """Base of heads that decode each level's boxes with their own ``_bbox_decode(priors, deltas,
    scale, img_shape)``, the level's ``scale`` read from the head attribute :attr:`level_scale`."""
    priority = 20
    decodes_per_level = True
    #: The head attribute holding each level's decoding scale.
    level_scale: ClassVar[str] = ''

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        return self.head._bbox_decode(priors, deltas, getattr(self.head, self.level_scale)[lv.level],
                                      meta['img_shape'])


@DETECTOR_FAMILIES.register_module()
class FoveaFamily(OwnDecodeFamily):
    """FoveaBox: sigmoid classes; each level's boxes decoded with its base edge length."""
    covers = 'FoveaBox'
    summary = 'sigmoid; boxes decoded per level with the base edge length; flip by box IoU'
    reference = FoveaHead
    level_scale = 'base_edge_list'


@DETECTOR_FAMILIES.register_module()
class RepPointsFamily(OwnDecodeFamily):
    """RepPoints: the head's forward turns each point's refined point set into a box (in stride
    units), which ``_bbox_decode`` places at the point and clips."""
    covers = 'RepPoints'
    summary = 'sigmoid; point sets as boxes, decoded per level; flip by box IoU'
    reference = RepPointsHead
    level_scale = 'point_strides'
