"""Models (registered in mmdet's MODELS) and adapters (mmal's ADAPTERS)."""
from .base_adapter import BaseAdapter
from .classification_adapter import ClassificationAdapter
from .classifier import CIFARResNet, ImageClassifier
from .csd import CSDSingleStageDetector
from .detection import DetectionAdapter, DetectorFamily
from .llal import LLALSingleStageDetector, LossPredictionModule, margin_ranking_loss
from .mixmatch import MixMatchClassifier, MultiViewDataPreprocessor
from .simclr import SimCLR
from .tiny_vgg import TinyVGG

__all__ = ['BaseAdapter', 'DetectorFamily', 'CIFARResNet', 'ClassificationAdapter', 'CSDSingleStageDetector',
           'ImageClassifier', 'TinyVGG',
           'DetectionAdapter', 'LLALSingleStageDetector', 'LossPredictionModule', 'margin_ranking_loss',
           'MixMatchClassifier', 'MultiViewDataPreprocessor', 'SimCLR']
