"""Classification transforms (mmcv's cover resize, centre crop and flip; these fill the gaps)."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.structures import BaseDataElement


@TRANSFORMS.register_module()
class RandomCropPad(BaseTransform):
    """Pad the image by ``padding`` pixels on every side, then crop ``size`` at a random place
    (CIFAR's "random crop with padding 4"; with ``padding=0`` a plain random crop).

    Args:
        size: Crop ``(h, w)`` or one side.
        padding: Pixels added on each side before cropping.
        pad_val: Fill value of the padding.
    """

    def __init__(self, size: Union[int, Tuple[int, int]], padding: int = 0, pad_val: int = 0) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding, self.pad_val = padding, pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        if self.padding:
            pad = ((self.padding, self.padding), (self.padding, self.padding)) + ((0, 0), ) * (img.ndim - 2)
            img = np.pad(img, pad, constant_values=self.pad_val)
        h, w = self.size
        if img.shape[0] < h or img.shape[1] < w:
            raise ValueError(f'RandomCropPad: a {img.shape[0]}x{img.shape[1]} image (after padding) is smaller '
                             f'than the {h}x{w} crop; resize it first.')
        top = np.random.randint(0, img.shape[0] - h + 1)
        left = np.random.randint(0, img.shape[1] - w + 1)
        results['img'] = img[top:top + h, left:left + w]
        results['img_shape'] = (h, w)
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack an image and its label: ``inputs`` (CHW uint8 tensor) and ``data_samples``
    (``BaseDataElement`` with ``gt_label`` when the sample has one, and ``meta_keys`` as metainfo).

    Args:
        meta_keys: Keys of the results copied into the sample's metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_id', 'img_path', 'flip')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get('gt_label') is not None:
            sample.gt_label = torch.tensor([int(results['gt_label'])])
        return dict(inputs=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), data_samples=sample)
