"""Acquisition functions: pure math in ``functional``, registered scorers in ``scorers``."""
from . import functional
from .scorers import (BALD, CoreSet, Consistency, Entropy, LossPrediction, Margin, MCVariationRatio,
                      Random, Scorer, VariationRatio)

__all__ = ['functional', 'Scorer', 'Random', 'Entropy', 'VariationRatio', 'Margin', 'BALD',
           'MCVariationRatio', 'Consistency', 'LossPrediction', 'CoreSet']
