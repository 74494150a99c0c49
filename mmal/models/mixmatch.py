"""MixMatch (Berthelot et al., NeurIPS 2019) for the image classifier."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as nnf
from mmdet.registry import MODELS
from mmengine.model import ImgDataPreprocessor
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..datasets.semi import is_labeled
from .classifier import ImageClassifier
from .schedule import current_iter
from .ssl_losses import linear_ramp, mixup, sharpen


@MODELS.register_module()
class MultiViewDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` for batches where some items hold ``K`` augmented views
    (``[K, C, H, W]``): the views become consecutive rows of the batch and each sample's metainfo
    gets ``views`` (1 for a plain ``[C, H, W]`` item)."""

    def forward(self, data: dict, training: bool = False) -> dict:
        rows, samples = [], data.get('data_samples')
        for i, item in enumerate(data['inputs']):
            views = list(item) if item.dim() == 4 else [item]
            rows += views
            if samples is not None:
                samples[i].set_metainfo(dict(views=len(views)))
        return super().forward(dict(inputs=rows, data_samples=samples), training)


@MODELS.register_module()
class MixMatchClassifier(ImageClassifier):
    """An :class:`ImageClassifier` trained with MixMatch on labeled and unlabeled images.

    Unlabeled items (``labeled=False`` in their metainfo) carry ``K`` augmented views. Their
    guessed label is the sharpened mean prediction over the views (no gradient). Labeled and
    unlabeled rows are mixed up with a shuffled copy of the whole batch; the labeled rows take a
    cross-entropy on the mixed labels (``loss_x``), the unlabeled ones a squared error between
    predicted and mixed guessed distributions (``loss_u``), weighted by ``lambda_u`` ramped up
    linearly over ``ramp_up_iters``.

    Args:
        temperature: Sharpening temperature ``T``.
        alpha: Mixup's Beta(α, α) parameter.
        lambda_u: Weight of the unlabeled loss at full strength.
        ramp_up_iters: Iterations of the linear ramp-up of ``lambda_u``.
        **kwargs: Everything :class:`ImageClassifier` takes.
    """

    def __init__(self, temperature: float = 0.5, alpha: float = 0.75, lambda_u: float = 75.0,
                 ramp_up_iters: int = 16384, data_preprocessor: Optional[dict] = None, **kwargs) -> None:
        preprocessor = dict(data_preprocessor or {})
        if preprocessor.get('type', 'ImgDataPreprocessor') == 'ImgDataPreprocessor':
            preprocessor['type'] = 'MultiViewDataPreprocessor'
        super().__init__(data_preprocessor=preprocessor, **kwargs)
        self.temperature, self.alpha, self.lambda_u, self.ramp_up_iters = temperature, alpha, lambda_u, ramp_up_iters

    def logits(self, inputs: Tensor) -> Tensor:
        return self.head(self.pool(self.extract_feat(inputs)))

    def guess_labels(self, views: Tensor) -> Tensor:
        """Sharpened mean prediction ``[N, C]`` over ``views`` ``[N, K, C, H, W]`` (no gradient)."""
        n, k = views.shape[:2]
        with torch.no_grad():
            probs = self.logits(views.flatten(0, 1)).softmax(-1).view(n, k, -1).mean(1)
        return sharpen(probs, self.temperature)

    def loss(self, inputs: Tensor, data_samples: List[BaseDataElement]) -> Dict[str, Tensor]:
        flags = is_labeled(data_samples)
        views = [s.metainfo.get('views', 1) for s in data_samples]
        starts = torch.tensor([0] + views[:-1]).cumsum(0).tolist()
        labeled = [starts[i] for i, flag in enumerate(flags) if flag]
        unlabeled = [i for i, flag in enumerate(flags) if not flag]
        k = views[unlabeled[0]] if unlabeled else 1
        if any(views[i] != k for i in unlabeled):
            raise ValueError('MixMatchClassifier: every unlabeled item of a batch needs the same number of views.')
        x = inputs[labeled]
        y = nnf.one_hot(torch.stack([data_samples[i].gt_label.view(-1)[0] for i, f in enumerate(flags) if f]),
                        self.num_classes).to(inputs.dtype) if labeled else inputs.new_zeros((0, self.num_classes))
        u = torch.stack([inputs[starts[i]:starts[i] + k] for i in unlabeled]) if unlabeled else None
        rows, targets = [x], [y]
        if u is not None:
            rows.append(u.flatten(0, 1))
            targets.append(self.guess_labels(u).repeat_interleave(k, dim=0))
        all_x, all_y = torch.cat(rows), torch.cat(targets)
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((len(all_x), )).to(inputs.device)
        mixed_x, mixed_y = mixup(all_x, all_y, torch.randperm(len(all_x), device=inputs.device), lam)
        logits = self.logits(mixed_x)
        n = len(x)
        zero = logits.sum() * 0
        loss_x = -(mixed_y[:n] * logits[:n].log_softmax(-1)).sum(-1).mean() if n else zero
        loss_u = (logits[n:].softmax(-1) - mixed_y[n:]).pow(2).mean() if len(logits) > n else zero
        weight = self.lambda_u * linear_ramp(current_iter(), self.ramp_up_iters)
        return {'loss_x': loss_x, 'loss_u': weight * loss_u}
