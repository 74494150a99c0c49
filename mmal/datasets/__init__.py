"""Datasets and dataset generators."""
from .toy_voc import TOY_CLASSES, ToyVOCSpec, generate_toy_voc, toy_voc_exists

__all__ = ['TOY_CLASSES', 'ToyVOCSpec', 'generate_toy_voc', 'toy_voc_exists']
