"""Acquisition functions: pure math in ``functional``, registered scorers in ``scorers``."""
from . import functional
from .scorers import (BALD, CoreSet, Consistency, Entropy, Inconsistency, LossPrediction, Margin,
                      MCVariationRatio, Random, Scorer, VariationRatio)

__all__ = ['functional', 'Scorer', 'Random', 'Entropy', 'VariationRatio', 'Margin', 'BALD',
           'MCVariationRatio', 'Consistency', 'Inconsistency', 'LossPrediction', 'CoreSet']
