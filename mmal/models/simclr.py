"""SimCLR (Chen et al., 2020): a representation of a pool learned without labels, for the selectors
that read features (:mod:`mmal.engine.features`).

mmpretrain 1.2 ships SimCLR, but it cannot be imported on the pinned stack: ``mmpretrain.models``
imports its evaluation package, which imports ``torchvision``, and torchvision has no CPU build for
the pinned torch. So the algorithm is written once here as an mmengine ``BaseModel`` on mmdet's
ResNet and trained by mmengine's ``Runner`` (no hand-written training loop): two augmented views of
every image (random resized crop, colour jitter, random grey, optionally a horizontal flip), a two-layer
projection head, and the NT-Xent loss over the batch's ``2B`` views. The representation is the
backbone's last stage, globally average-pooled (the projection is discarded, as in the paper).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as nnf
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from torch import Tensor, nn

#: Mean and spread of the views fed to the backbone (pixels in [0, 1]).
MEAN, STD = 0.5, 0.25


def nt_xent(z: Tensor, temperature: float) -> Tensor:
    """SimCLR's loss: each of the ``2B`` rows must pick its partner (row ``i`` and ``i + B`` are two
    views of one image) among the other ``2B - 1`` by cosine similarity / ``temperature``.

    Args:
        z: ``[2B, D]`` projections, the first view of every image, then the second.
        temperature: Softmax temperature.
    """
    z = nnf.normalize(z, dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float('-inf'))
    half = z.shape[0] // 2
    partner = torch.arange(z.shape[0], device=z.device).roll(half)
    return nnf.cross_entropy(similarity, partner)


def augment(x: Tensor, crop_min: float = 0.3, jitter: float = 0.4, grey: float = 0.2, flip: bool = False) -> Tensor:
    """One random view of each image of a batch (SimCLR's recipe, in torch on the whole batch).

    Args:
        x: ``[B, 3, H, W]`` pixels in [0, 1].
        crop_min: Least area of the random crop (a fraction of the image; aspect ratio in [3/4, 4/3]
            as far as the crop fits); it is resized back to ``H x W``.
        jitter: Strength of the brightness, contrast and saturation changes (applied with
            probability 0.8).
        grey: Probability of a grey view.
        flip: Flip half the views horizontally (leave it off where a mirror image is another class).
    """
    b = x.shape[0]
    area = torch.empty(b).uniform_(crop_min, 1.0)
    low, high = area.log().clamp(min=math.log(3 / 4)), (-area.log()).clamp(max=math.log(4 / 3))  # the crop fits
    ratio = torch.exp(low + (high - low) * torch.rand(b))
    sx, sy = (area * ratio).sqrt(), (area / ratio).sqrt()
    tx, ty = (torch.rand(b) * 2 - 1) * (1 - sx), (torch.rand(b) * 2 - 1) * (1 - sy)
    mirror = torch.where(torch.rand(b) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * mirror, tx, sy, ty
    grid = nnf.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    x = nnf.grid_sample(x, grid, mode='bilinear', padding_mode='reflection', align_corners=False)

    def factor() -> Tensor:
        on = (torch.rand(b) < 0.8).float()
        return (1 + on * torch.empty(b).uniform_(-jitter, jitter)).to(x).view(b, 1, 1, 1)

    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    x = x * factor()  # brightness
    mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = (x - mean) * factor() + mean  # contrast
    grey_x = (x * weights).sum(1, keepdim=True)
    x = (x - grey_x) * factor() + grey_x  # saturation
    to_grey = (torch.rand(b) < grey).to(x.device).view(b, 1, 1, 1)
    x = torch.where(to_grey, (x * weights).sum(1, keepdim=True).expand_as(x), x)
    return x.clamp(0, 1)


@MODELS.register_module()
class SimCLR(BaseModel):
    """Backbone + projection head trained with NT-Xent on two views of each image.

    ``forward(inputs, mode='loss')`` takes ``[B, 3, H, W]`` uint8 (or 0-255 float) images;
    ``mode='tensor'`` returns their ``[B, C]`` representation (no augmentation).

    Args:
        backbone: Backbone config (mmdet's ``MODELS``) returning the stages' feature maps.
        in_channels: Channels of the backbone's last stage.
        projection_dim: Output size of the projection head (its hidden layer has ``in_channels``).
        temperature: NT-Xent temperature.
        crop_min: Least crop area of a view.
        jitter: Colour-jitter strength of a view.
        grey: Probability of a grey view.
        flip: Flip half the views horizontally (default off, see :func:`augment`).
    """

    def __init__(self, backbone: dict, in_channels: int, projection_dim: int = 64, temperature: float = 0.2,
                 crop_min: float = 0.3, jitter: float = 0.4, grey: float = 0.2, flip: bool = False) -> None:
        super().__init__()
        if temperature <= 0 or not 0 < crop_min <= 1:
            raise ValueError(f'SimCLR needs temperature > 0 and crop_min in (0, 1], got {temperature}, {crop_min}.')
        self.backbone = MODELS.build(backbone)
        self.projector = nn.Sequential(nn.Linear(in_channels, in_channels), nn.ReLU(inplace=True),
                                       nn.Linear(in_channels, projection_dim))
        self.temperature, self.crop_min, self.jitter, self.grey, self.flip = temperature, crop_min, jitter, grey, flip

    def embed(self, images: Tensor) -> Tensor:
        """``[B, C]`` representation of ``[B, 3, H, W]`` 0-255 images (no augmentation)."""
        return self._encode((images.float() / 255 - MEAN) / STD)

    def _encode(self, x: Tensor) -> Tensor:
        stages: Sequence[Tensor] = self.backbone(x)
        return stages[-1].mean(dim=(2, 3))

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.embed(inputs)
        if mode == 'loss':
            return self.loss(inputs)
        raise RuntimeError(f'SimCLR: unknown mode {mode!r}; use "loss" or "tensor".')

    def loss(self, inputs: Tensor) -> Dict[str, Tensor]:
        """NT-Xent of two random views of each image."""
        x = inputs.float() / 255
        views = torch.cat([augment(x, self.crop_min, self.jitter, self.grey, self.flip) for _ in range(2)])
        z = self.projector(self._encode((views - MEAN) / STD))
        return {'loss': nt_xent(z, self.temperature)}
