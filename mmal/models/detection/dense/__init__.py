"""Single-stage dense detectors: one candidate per prior (anchor or point) of the head.

- :mod:`.rows`: from a candidate's index to its level and location; reading maps and the
  classification layer there (Monte-Carlo dropout, BADGE's inputs);
- :mod:`.base`: :class:`DenseHeadFamily`, mmdet's default dense post-processing with the prior
  index carried, and the pieces the others share (:func:`.base.keep_top`, :func:`.base.finish`);
- one file per head that post-processes otherwise: :mod:`.ssd`, :mod:`.gfl`, :mod:`.yolox`,
  :mod:`.yolov3`, :mod:`.tood`, :mod:`.own_decode` (FoveaBox, RepPoints), :mod:`.paa`.
"""
from .base import DenseHeadFamily
from .gfl import GFLFamily
from .own_decode import FoveaFamily, RepPointsFamily
from .paa import PAAFamily
from .rows import CLASSIFIER_ATTRS, DensePass, LevelOutputs
from .ssd import SSDFamily
from .tood import TOODFamily
from .yolov3 import YOLOV3Family
from .yolox import YOLOXFamily

__all__ = ['DenseHeadFamily', 'SSDFamily', 'GFLFamily', 'YOLOXFamily', 'YOLOV3Family', 'TOODFamily', 'FoveaFamily',
           'RepPointsFamily', 'PAAFamily', 'DensePass', 'LevelOutputs', 'CLASSIFIER_ATTRS']
