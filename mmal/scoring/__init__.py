"""Acquisition functions: pure math in ``functional``, registered scorers in ``scorers``.

The model-output contract they read is :mod:`mmal.outputs`; ranking and batch selection are the
selectors' (:mod:`mmal.selection`).
"""
from . import functional
from .scorers import (
                      BALD,
                      Consistency,
                      DifficultyCalibratedUncertainty,
                      Entropy,
                      Inconsistency,
                      LocalizationStability,
                      LocalizationTightness,
                      LossPrediction,
                      Margin,
                      MCVariationRatio,
                      Random,
                      Scorer,
                      VariationRatio,
)

__all__ = ['functional', 'Scorer', 'Random', 'Entropy', 'VariationRatio', 'Margin', 'BALD', 'MCVariationRatio',
           'Consistency', 'Inconsistency', 'LossPrediction', 'DifficultyCalibratedUncertainty', 'LocalizationStability',
           'LocalizationTightness']
