"""Models registered in mmdet's MODELS registry."""
from .tiny_vgg import TinyVGG

__all__ = ['TinyVGG']
