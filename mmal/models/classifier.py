"""Image classification for the study's classification experiments: ResNet-18 and a classifier.

The backbone is mmdet's ``ResNet`` (real OpenMMLab code, no torchvision); ``CIFARResNet`` swaps its
stem for the 3x3, stride-1, no-max-pool stem of the CIFAR form. ``ImageClassifier`` is an mmengine
``BaseModel``: backbone, global average pooling, optional dropout, one fc, and optionally LLAL's
loss-prediction module on the backbone's stages.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as nnf
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from .llal import margin_ranking_loss


@MODELS.register_module()
class CIFARResNet(ResNet):
    """mmdet's ResNet with the CIFAR stem: one 3x3 stride-1 conv, no max-pool (32x32 inputs).

    Args:
        **kwargs: Everything ``mmdet.models.backbones.ResNet`` takes; ``norm_eval`` defaults to
            False (BatchNorm trains, as the study's from-scratch ResNet-18).
    """

    def __init__(self, depth: int = 18, norm_eval: bool = False, **kwargs) -> None:
        if kwargs.get('deep_stem'):
            raise ValueError('CIFARResNet has its own stem; leave deep_stem unset.')
        super().__init__(depth=depth, norm_eval=norm_eval, **kwargs)

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels, kernel_size=3, stride=1,
                                      padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Backbone -> global average pooling -> (dropout) -> fc, trained with cross-entropy.

    Args:
        backbone: Backbone config returning the stages' feature maps (the last is classified).
        num_classes: Number of classes.
        in_channels: Channels of the last stage.
        dropout: Dropout probability before the fc (0: none). Monte-Carlo scorers (BALD) sample it.
        loss_prediction: Config of LLAL's ``LossPredictionModule`` over the stages (``in_channels``
            = each stage's channels), or None. Its target is each image's cross-entropy.
        llal_margin: Margin of LLAL's ranking loss.
        llal_weight: Weight of LLAL's ranking loss.
        data_preprocessor: Normalisation config (mmengine's ``ImgDataPreprocessor``).
        init_cfg: Initialisation config.
    """

    default_adapter = 'ClassificationAdapter'

    def __init__(self,
                 backbone: dict,
                 num_classes: int,
                 in_channels: int = 512,
                 dropout: float = 0.0,
                 loss_prediction: Optional[dict] = None,
                 llal_margin: float = 1.0,
                 llal_weight: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='ImgDataPreprocessor'),
                         init_cfg=init_cfg)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'ImageClassifier: dropout must lie in [0, 1), got {dropout}.')
        self.backbone = MODELS.build(backbone)
        self.num_classes, self.dropout_p = num_classes, dropout
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_prediction = (MODELS.build({'type': 'LossPredictionModule', **loss_prediction})
                                if loss_prediction else None)
        self.llal_margin, self.llal_weight = llal_margin, llal_weight
        self.llal_detached = False  # set by LLALDetachHook after the configured epoch

    # -- pieces the adapter uses ------------------------------------------------------------------
    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """The backbone's stage outputs."""
        return tuple(self.backbone(inputs))

    @staticmethod
    def pool(stages: Sequence[Tensor]) -> Tensor:
        """Penultimate features ``[B, C]``: the last stage, globally average-pooled."""
        return stages[-1].mean(dim=(2, 3))

    def head(self, features: Tensor, dropout: Optional[float] = None) -> Tensor:
        """Logits from penultimate features; ``dropout`` overrides the model's (and is applied in
        eval mode too: Monte-Carlo sampling)."""
        p = self.dropout_p if dropout is None else dropout
        if p > 0:
            features = nnf.dropout(features, p, training=self.training if dropout is None else True)
        return self.fc(features)

    def predict_loss(self, stages: Sequence[Tensor]) -> Tensor:
        """LLAL's predicted loss ``[B]``."""
        if self.loss_prediction is None:
            raise TypeError('this ImageClassifier has no loss_prediction module; add one to use the '
                            'LossPrediction scorer (see configs/cifar10_llal.py).')
        return self.loss_prediction(stages)

    # -- BaseModel -----------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            if data_samples is None:
                raise ValueError('ImageClassifier: mode=\'loss\' needs the data samples (the labels).')
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.head(self.pool(self.extract_feat(inputs)))
        raise RuntimeError(f'ImageClassifier: unknown mode {mode!r}; use "loss", "predict" or "tensor".')

    def loss(self, inputs: Tensor, data_samples: List[BaseDataElement]) -> Dict[str, Tensor]:
        stages = self.extract_feat(inputs)
        logits = self.head(self.pool(stages))
        labels = torch.stack([s.gt_label for s in data_samples]).to(logits.device).view(-1)
        per_image = nnf.cross_entropy(logits, labels, reduction='none')
        losses = {'loss_cls': per_image.mean()}
        if self.loss_prediction is not None:
            pred = self.loss_prediction([s.detach() for s in stages] if self.llal_detached else stages)
            losses['loss_llal'] = self.llal_weight * margin_ranking_loss(pred, per_image.detach(), self.llal_margin)
        return losses

    def predict(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        scores = self.head(self.pool(self.extract_feat(inputs))).softmax(-1)
        samples = data_samples or [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax(-1, keepdim=True)
        return samples
