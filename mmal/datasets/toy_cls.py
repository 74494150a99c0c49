"""Tiny synthetic classification data in the real on-disk formats (tests and the CPU demo).

- :func:`write_toy_cifar`: ``cifar-10-batches-py`` or ``cifar-100-python`` pickles, byte for byte
  the structure of the real archives (bytes keys, ``N x 3072`` uint8 RGB planes, label lists).
- :func:`write_toy_folders`: class-per-folder JPEGs (the Caltech layouts and users' own data).

Class ``c`` is a set of stripes at its own angle and frequency in its own colour; each image gets
its own amount of noise, so some images are easy and some are hard: uncertainty has signal.

    python -m mmal.datasets.toy_cls data/toy_cifar10     # the demo's set
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import pickle
import tempfile
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ..errors import UserError


def toy_images(labels: Sequence[int], num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[N, size, size, 3]`` uint8 RGB images of the given classes."""
    label_array = np.asarray(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = np.pi * label_array / num_classes + rng.normal(0, 0.05, len(label_array))
    freq = 2.0 + (label_array % 3) + rng.uniform(-0.2, 0.2, len(label_array))
    phase = rng.uniform(0, 2 * np.pi, len(label_array))
    along = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    wave = np.sin(2 * np.pi * freq[:, None, None] * along + phase[:, None, None])
    hue = (label_array * 0.61803) % 1.0
    colour = np.stack([np.abs(np.sin(np.pi * (hue + k / 3))) for k in range(3)], axis=1)  # [N, 3]
    noise_level = rng.uniform(0.2, 2.5, len(label_array))  # easy ... hard
    img = 0.5 + 0.35 * wave[..., None] * colour[:, None, None, :]
    img = img + noise_level[:, None, None, None] * rng.normal(0, 0.25, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _labels(num_classes: int, per_class: int, rng: np.random.Generator) -> List[int]:
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    return labels.tolist()


def _fresh_folder(path: str) -> None:
    if osp.exists(path):
        raise UserError(f'{path} already exists; remove it or write the toy data elsewhere.')


def write_toy_cifar(root: str, num_classes: int = 10, train_per_class: int = 50, test_per_class: int = 20,
                    seed: int = 0) -> str:
    """Write a CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``) layout under ``root``.

    Returns:
        ``root`` (the ``data_root`` of ``CIFAR10`` / ``CIFAR100``).
    """
    if num_classes not in (10, 100):
        raise ValueError(f'write_toy_cifar: num_classes must be 10 or 100, got {num_classes}.')
    folder = 'cifar-10-batches-py' if num_classes == 10 else 'cifar-100-python'
    _fresh_folder(osp.join(root, folder))
    rng = np.random.default_rng(seed)
    train = _labels(num_classes, train_per_class, rng)
    test = _labels(num_classes, test_per_class, rng)
    names = [f'class_{c}'.encode() for c in range(num_classes)]

    def batch(labels, label_key, name):
        data = toy_images(labels, num_classes, 32, rng).transpose(0, 3, 1, 2).reshape(len(labels), -1)
        return {b'batch_label': name.encode(), label_key: list(labels), b'data': data,
                b'filenames': [f'{name}_{i}.png'.encode() for i in range(len(labels))]}

    tmp = tempfile.mkdtemp(prefix=f'.{folder}.', dir=_made(root))
    files = {}
    if num_classes == 10:
        for i, part in enumerate(np.array_split(np.asarray(train), 5)):
            files[f'data_batch_{i + 1}'] = batch(part.tolist(), b'labels', f'training batch {i + 1} of 5')
        files['test_batch'] = batch(test, b'labels', 'testing batch 1 of 1')
        files['batches.meta'] = {b'label_names': names, b'num_cases_per_batch': len(train) // 5, b'num_vis': 3072}
    else:
        files['train'] = batch(train, b'fine_labels', 'training batch 1 of 1')
        files['test'] = batch(test, b'fine_labels', 'testing batch 1 of 1')
        for split in ('train', 'test'):
            files[split][b'coarse_labels'] = [c // 5 for c in files[split][b'fine_labels']]
        files['meta'] = {b'fine_label_names': names, b'coarse_label_names': [f'super_{c}'.encode() for c in range(20)]}
    for name, obj in files.items():
        with open(osp.join(tmp, name), 'wb') as f:
            pickle.dump(obj, f, protocol=2)
    os.replace(tmp, osp.join(root, folder))
    return root


def write_toy_folders(root: str, folder: str, classes: Sequence[str], per_class: int = 20, size: int = 64,
                      seed: int = 0, extra_folders: Sequence[str] = ()) -> str:
    """Write ``root/folder/<class>/image_NNNN.jpg`` for each class (``extra_folders``: classes a
    dataset should leave out, such as Caltech-101's ``BACKGROUND_Google``).

    Returns:
        ``root``.
    """
    _fresh_folder(osp.join(root, folder))
    rng = np.random.default_rng(seed)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(folder)}.', dir=_made(osp.dirname(osp.join(root, folder))))
    everything = list(classes) + list(extra_folders)
    for label, name in enumerate(everything):
        os.makedirs(osp.join(tmp, name))
        for i, img in enumerate(toy_images([label] * per_class, len(everything), size, rng)):
            cv2.imwrite(osp.join(tmp, name, f'image_{i + 1:04d}.jpg'), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    os.replace(tmp, osp.join(root, folder))
    return root


def _made(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='Write a toy CIFAR-10 set in the real pickle format.')
    parser.add_argument('root')
    parser.add_argument('--train-per-class', type=int, default=100)
    parser.add_argument('--test-per-class', type=int, default=40)
    args = parser.parse_args(argv)
    write_toy_cifar(args.root, 10, args.train_per_class, args.test_per_class)
    print(f'toy CIFAR-10 written to {osp.join(args.root, "cifar-10-batches-py")}')


if __name__ == '__main__':
    main()
