"""A narrow VGG-style backbone that makes SSD trainable on two CPU cores."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn


@MODELS.register_module()
class TinyVGG(BaseModule):
    """Stacks of 3×3 conv-BN-ReLU with stride-2 steps, one feature map per stage.

    With the default widths a 128 px image costs about 0.1 GFLOPs, against about 30 for SSD300's
    VGG-16. Each stage halves the resolution, so stage ``i`` has stride ``2 ** (i + 1)``.

    Args:
        widths: Output channels of each stage.
        depths: Convolutions in each stage (the first one of a stage has stride 2).
        out_indices: Stages whose outputs are returned, shallow to deep.
        norm_cfg: Normalisation layer config.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 widths: Sequence[int] = (16, 32, 64, 96, 128, 128),
                 depths: Sequence[int] = (1, 2, 2, 2, 1, 1),
                 out_indices: Sequence[int] = (2, 3, 4, 5),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=dict(type='Kaiming', layer='Conv2d')) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(widths) != len(depths):
            raise ValueError(f'widths ({len(widths)}) and depths ({len(depths)}) must have the same length.')
        self.out_indices = tuple(out_indices)
        stages, in_ch = [], 3
        for width, depth in zip(widths, depths):
            layers = [ConvModule(in_ch if i == 0 else width, width, 3, stride=2 if i == 0 else 1,
                                 padding=1, norm_cfg=norm_cfg) for i in range(depth)]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
