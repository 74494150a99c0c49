"""Datasets and dataset generators."""
from .image_pool import ImagePoolDataset
from .subset import IndexSubset
from .toy_voc import TOY_CLASSES, ToyVOCSpec, generate_toy_voc, toy_voc_exists

__all__ = ['ImagePoolDataset', 'IndexSubset', 'TOY_CLASSES', 'ToyVOCSpec', 'generate_toy_voc', 'toy_voc_exists']
