"""Turn an image classifier and a batch into the outputs a scorer requires (one row per image)."""
from __future__ import annotations

from typing import Collection, Dict, FrozenSet, Optional

import torch
from torch import nn

from ..outputs import (
    AUG_PROBS,
    FEATURES,
    FLIP_LOG_PROBS,
    LAST_LAYER_INPUT,
    LOG_PROBS,
    MC_PROBS,
    PRED_LOSS,
    PROBS,
    ModelOutputs,
)
from ..registry import ADAPTERS
from .base_adapter import BaseAdapter
from .classifier import ImageClassifier


@ADAPTERS.register_module()
class ClassificationAdapter(BaseAdapter):
    """Outputs of an :class:`~mmal.models.ImageClassifier` for the same scorers as detection.

    The backbone runs once per batch (twice with ``flip_log_probs``: once on the mirrored images);
    Monte-Carlo samples redraw only the dropout before the fc, ``T`` times, batched.
    ``aug_probs`` are the predictions for ``aug_views`` augmentations of each image: a random
    horizontal flip and a random shift of up to ``aug_shift`` pixels (zero-padded, as CIFAR's
    padded random crop), drawn from a generator seeded with ``aug_seed`` at every call.
    ``last_layer_input`` is the penultimate feature vector, the fc's input (BADGE).

    Args:
        model: The classifier (``extract_feat``, ``pool``, ``head``; ``predict_loss`` for LLAL).
        requires: Output keys to compute (see :mod:`mmal.scoring.scorers`).
        mc_samples: Monte-Carlo samples ``T`` of ``mc_probs``.
        dropout_p: Dropout of the Monte-Carlo samples; defaults to the model's own dropout.
        aug_views: Augmented views ``K`` of ``aug_probs``.
        aug_shift: Largest shift in pixels of an augmented view.
        aug_seed: Seed of the augmentations.
    """

    def __init__(self, model: ImageClassifier, requires: Collection[str], mc_samples: int = 10,
                 dropout_p: Optional[float] = None, aug_views: int = 2, aug_shift: int = 4,
                 aug_seed: int = 0) -> None:
        if not all(hasattr(model, name) for name in ('extract_feat', 'pool', 'head')):
            raise TypeError(f'{type(model).__name__} is not an image classifier (extract_feat, pool, head); '
                            'use ClassificationAdapter with mmal.models.ImageClassifier.')
        super().__init__(model, requires)
        self.model: ImageClassifier = model
        p = getattr(model, 'dropout_p', 0.0) if dropout_p is None else dropout_p
        if MC_PROBS in self.requires and not 0 < p < 1:
            raise ValueError('Monte-Carlo outputs need dropout: give the model dropout=0.3 (or similar) or '
                             'set the adapter\'s dropout_p.')
        self.mc_samples, self.dropout_p = mc_samples, p
        self.aug_views, self.aug_shift, self.aug_seed = aug_views, aug_shift, aug_seed

    provides = frozenset({PROBS, LOG_PROBS, FLIP_LOG_PROBS, MC_PROBS, FEATURES, PRED_LOSS, AUG_PROBS, LAST_LAYER_INPUT})
    hints = {PRED_LOSS: 'add loss_prediction to the model for the LossPrediction scorer (see configs/cifar10_llal.py).'}

    def provides_for(self, model: nn.Module) -> FrozenSet[str]:
        if getattr(model, 'loss_prediction', None) is None:
            return self.provides - {PRED_LOSS}
        return self.provides

    @torch.no_grad()
    def __call__(self, data: Dict) -> ModelOutputs:
        """Outputs for one dataloader batch: the required keys (``[B, ...]``, ``mc_probs``
        ``[T, B, C]``) and ``num_images``."""
        model = self.model
        model.eval()
        inputs = model.data_preprocessor(data, False)['inputs']
        out: ModelOutputs = {'num_images': inputs.shape[0]}
        if not self.requires:
            return out
        stages = model.extract_feat(inputs)
        features = model.pool(stages)
        if FEATURES in self.requires:
            out[FEATURES] = features
        if LAST_LAYER_INPUT in self.requires:
            out[LAST_LAYER_INPUT] = features
        if PRED_LOSS in self.requires:
            out[PRED_LOSS] = model.predict_loss(stages)
        if self.requires & {PROBS, LOG_PROBS}:
            log_probs = model.head(features, dropout=0.0).log_softmax(-1)
            if PROBS in self.requires:
                out[PROBS] = log_probs.exp()
            if LOG_PROBS in self.requires:
                out[LOG_PROBS] = log_probs
        if MC_PROBS in self.requires:
            repeated = features.unsqueeze(0).expand(self.mc_samples, -1, -1).reshape(-1, features.shape[1])
            logits = model.head(repeated, dropout=self.dropout_p)
            out[MC_PROBS] = logits.softmax(-1).view(self.mc_samples, features.shape[0], -1)
        if FLIP_LOG_PROBS in self.requires:
            flipped = model.pool(model.extract_feat(inputs.flip(-1)))
            out[FLIP_LOG_PROBS] = model.head(flipped, dropout=0.0).log_softmax(-1)
        if AUG_PROBS in self.requires:
            views = torch.stack([self._augment(inputs, k) for k in range(self.aug_views)])
            logits = model.head(model.pool(model.extract_feat(views.flatten(0, 1))), dropout=0.0)
            out[AUG_PROBS] = logits.softmax(-1).view(self.aug_views, inputs.shape[0], -1)
        return out

    def _augment(self, inputs: torch.Tensor, view: int) -> torch.Tensor:
        """View ``view`` of the batch: per image a random flip and a random zero-padded shift."""
        g = torch.Generator().manual_seed(self.aug_seed * 1000 + view)
        n, s = inputs.shape[0], self.aug_shift
        flip = torch.rand(n, generator=g) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1).to(inputs.device), inputs.flip(-1), inputs)
        if s > 0:
            padded = torch.nn.functional.pad(out, (s, s, s, s))
            dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=g).tolist()
            h, w = inputs.shape[-2:]
            out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
        return out
