"""Turn an image classifier and a batch into the outputs a scorer requires (one row per image)."""
from __future__ import annotations

from typing import Collection, Dict, Optional

import torch
from torch import nn

from ..registry import ADAPTERS
from ..scoring.scorers import FEATURES, FLIP_PROBS, MC_PROBS, OUTPUT_KEYS, PRED_LOSS, PROBS


@ADAPTERS.register_module()
class ClassificationAdapter:
    """Outputs of an :class:`~mmal.models.ImageClassifier` for the same scorers as detection.

    The backbone runs once per batch (twice with ``flip_probs``: once on the mirrored images);
    Monte-Carlo samples redraw only the dropout before the fc, ``T`` times, batched.

    Args:
        model: The classifier (``extract_feat``, ``pool``, ``head``; ``predict_loss`` for LLAL).
        requires: Output keys to compute (see :mod:`mmal.scoring.scorers`).
        mc_samples: Monte-Carlo samples ``T`` of ``mc_probs``.
        dropout_p: Dropout of the Monte-Carlo samples; defaults to the model's own dropout.
    """

    def __init__(self, model: nn.Module, requires: Collection[str], mc_samples: int = 10,
                 dropout_p: Optional[float] = None) -> None:
        unknown = set(requires) - OUTPUT_KEYS
        if unknown:
            raise ValueError(f'unknown model outputs {sorted(unknown)}; known: {sorted(OUTPUT_KEYS)}.')
        if not all(hasattr(model, name) for name in ('extract_feat', 'pool', 'head')):
            raise TypeError(f'{type(model).__name__} is not an image classifier (extract_feat, pool, head); '
                            'use ClassificationAdapter with mmal.models.ImageClassifier.')
        p = getattr(model, 'dropout_p', 0.0) if dropout_p is None else dropout_p
        if MC_PROBS in requires and not 0 < p < 1:
            raise ValueError('Monte-Carlo outputs need dropout: give the model dropout=0.3 (or similar) or '
                             'set the adapter\'s dropout_p.')
        if PRED_LOSS in requires and getattr(model, 'loss_prediction', None) is None:
            raise TypeError(f'{type(model).__name__} has no loss-prediction module; add loss_prediction to '
                            'the model for the LossPrediction scorer.')
        self.model, self.requires = model, frozenset(requires)
        self.mc_samples, self.dropout_p = mc_samples, p

    @torch.no_grad()
    def __call__(self, data: Dict) -> Dict:
        """Outputs for one dataloader batch: the required keys (``[B, ...]``, ``mc_probs``
        ``[T, B, C]``) and ``num_images``."""
        model = self.model
        model.eval()
        inputs = model.data_preprocessor(data, False)['inputs']
        out: Dict = {'num_images': inputs.shape[0]}
        if not self.requires:
            return out
        stages = model.extract_feat(inputs)
        features = model.pool(stages)
        if FEATURES in self.requires:
            out[FEATURES] = features
        if PRED_LOSS in self.requires:
            out[PRED_LOSS] = model.predict_loss(stages)
        if PROBS in self.requires:
            out[PROBS] = model.head(features, dropout=0.0).softmax(-1)
        if MC_PROBS in self.requires:
            repeated = features.unsqueeze(0).expand(self.mc_samples, -1, -1).reshape(-1, features.shape[1])
            logits = model.head(repeated, dropout=self.dropout_p)
            out[MC_PROBS] = logits.softmax(-1).view(self.mc_samples, features.shape[0], -1)
        if FLIP_PROBS in self.requires:
            flipped = model.pool(model.extract_feat(inputs.flip(-1)))
            out[FLIP_PROBS] = model.head(flipped, dropout=0.0).softmax(-1)
        return out
