"""Metrics (registered in mmdet's METRICS)."""
from .accuracy import ClassificationAccuracy

__all__ = ['ClassificationAccuracy']
