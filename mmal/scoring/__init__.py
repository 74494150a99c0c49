"""Acquisition functions: pure math in ``functional``, the output contract in ``outputs``,
registered scorers in ``scorers``."""
from . import functional, outputs
from .outputs import ModelOutputs
from .scorers import (
                      BALD,
                      Consistency,
                      CoreSet,
                      Entropy,
                      Inconsistency,
                      LossPrediction,
                      Margin,
                      MCVariationRatio,
                      Random,
                      Scorer,
                      VariationRatio,
)

__all__ = ['functional', 'outputs', 'ModelOutputs', 'Scorer', 'Random', 'Entropy', 'VariationRatio', 'Margin',
           'BALD', 'MCVariationRatio', 'Consistency', 'Inconsistency', 'LossPrediction', 'CoreSet']
