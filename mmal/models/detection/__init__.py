"""Detection: ``DetectionAdapter`` and the detector families it runs (``DETECTOR_FAMILIES``)."""
from .adapter import DetectionAdapter, find_family
from .dense import DenseHeadFamily, GFLFamily, PAAFamily, SSDFamily, YOLOXFamily
from .detr import DETRFamily
from .distributions import class_distribution, level_logits, sigmoid_log_probs, softmax_log_probs
from .family import DetectorFamily
from .two_stage import TwoStageFamily

__all__ = ['DetectionAdapter', 'find_family', 'DetectorFamily', 'DenseHeadFamily', 'SSDFamily', 'GFLFamily',
           'YOLOXFamily', 'PAAFamily', 'TwoStageFamily', 'DETRFamily', 'class_distribution', 'level_logits',
           'sigmoid_log_probs', 'softmax_log_probs']
