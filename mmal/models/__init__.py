"""Models (registered in mmdet's MODELS) and adapters (mmal's ADAPTERS)."""
from .detection_adapter import DetectionAdapter
from .llal import LLALSingleStageDetector, LossPredictionModule, margin_ranking_loss
from .tiny_vgg import TinyVGG

__all__ = ['TinyVGG', 'DetectionAdapter', 'LLALSingleStageDetector', 'LossPredictionModule',
           'margin_ranking_loss']
