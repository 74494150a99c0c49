"""A detection set of real handwriting in PASCAL VOC layout: the UCI handwritten digits that
scikit-learn ships (1,797 scans, 8x8 pixels, 10 classes; no download), up to ``max_objects`` of
them scaled (20-49 px wide) and inked in a dark colour on 128 px paper of a light colour with a
little texture, each box tight around its strokes. Training and test images draw from disjoint
scans (the first 1,347 and the last 450), so no test glyph was seen in training. The class of an
object is its digit (``'0'`` ... ``'9'``).

The layout is the toy set's (read by mmdet's ``VOCDataset`` and ``VOCMetric`` unchanged)::

    <root>/VOCdevkit/DigitsVOC/{JPEGImages,Annotations,ImageSets/Main/{trainval,test}.txt}

    python -m mmal.datasets.digits_voc --out data/digits_voc
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from .toy_voc import Box, _annotation_xml, _iou, write_voc_atomically

DIGIT_CLASSES: Tuple[str, ...] = tuple(str(d) for d in range(10))
#: Scans of the training images (the rest are the test images').
TRAIN_SCANS = 1347
_DONE_MARKER = '.mmal_digits_voc_complete'
#: Changes whenever the generator writes other images for the same settings (a set it finds is rewritten).
GENERATOR_VERSION = 'digits_voc 3'


def _scans() -> Tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError('the digits set is made from scikit-learn\'s copy of the UCI digits; install it with '
                        '`.venv/bin/pip install scikit-learn`.') from None
    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(int)


def _render(rng: np.random.Generator, scans: np.ndarray, targets: np.ndarray, size: int,
            max_objects: int) -> Tuple[np.ndarray, List[Tuple[str, Box]]]:
    img = np.full((size, size, 3), rng.uniform(150, 255, 3), dtype=np.float32)  # paper of some colour
    img += cv2.resize(rng.normal(0, 12, (8, 8, 3)).astype(np.float32), (size, size)) + rng.normal(0, 4, img.shape)
    objects: List[Tuple[str, Box]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            w = int(rng.integers(size // 5, int(size // 2.6)))
            h = min(size - 1, int(w * rng.uniform(1.0, 1.3)))
            x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            place = (x1, y1, x1 + w, y1 + h)
            if all(_iou(place, b) < 0.05 for _, b in objects):
                break
        else:
            continue
        k = int(rng.integers(len(scans)))
        alpha = np.clip(cv2.resize(scans[k], (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
        ys, xs = np.nonzero(alpha > 0.3)
        if len(xs) == 0:
            continue
        region = img[y1:y1 + h, x1:x1 + w]
        color = rng.uniform(0, 90, 3).astype(np.float32)  # ink
        img[y1:y1 + h, x1:x1 + w] = region * (1 - alpha[..., None]) + color * alpha[..., None]
        box = (x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1)
        objects.append((DIGIT_CLASSES[int(targets[k])], box))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _write_split(voc: str, rng: np.random.Generator, scans: np.ndarray, targets: np.ndarray, split: str, num: int,
                 size: int, max_objects: int) -> None:
    ids = []
    for i in range(num):
        img, objects = _render(rng, scans, targets, size, max_objects)
        img_id = f'{split}_{i:06d}'
        cv2.imwrite(osp.join(voc, 'JPEGImages', f'{img_id}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(osp.join(voc, 'Annotations', f'{img_id}.xml'), 'w') as f:
            f.write(_annotation_xml(img_id, size, objects))
        ids.append(img_id)
    with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')


def generate_digits_voc(root: str, num_trainval: int = 800, num_test: int = 300, max_objects: int = 3,
                        seed: int = 0, image_size: int = 128) -> str:
    """Write the set under ``root`` (once: a complete one of the same settings is kept) through a
    temporary folder moved into place at the end; return the ``data_root`` for mmdet (``root/VOCdevkit/``).

    Raises:
        UserError: ``root`` holds something else, or scikit-learn is missing.
    """
    data_root = osp.join(root, 'VOCdevkit') + os.sep
    settings = f'{GENERATOR_VERSION}\n{num_trainval} {num_test} {max_objects} {seed} {image_size}\n'
    marker = osp.join(root, _DONE_MARKER)
    if osp.isfile(marker) and open(marker).read() == settings:
        return data_root
    if osp.exists(root) and not osp.isfile(marker) and os.listdir(root):
        raise UserError(f'{root} exists and is not a digits set made by mmal; choose another output folder or '
                        'remove it.')
    scans, targets = _scans()

    def fill(voc: str) -> None:
        rng = np.random.default_rng(seed)
        _write_split(voc, rng, scans[:TRAIN_SCANS], targets[:TRAIN_SCANS], 'trainval', num_trainval, image_size,
                     max_objects)
        _write_split(voc, rng, scans[TRAIN_SCANS:], targets[TRAIN_SCANS:], 'test', num_test, image_size, max_objects)

    write_voc_atomically(root, 'DigitsVOC', _DONE_MARKER, settings, fill)
    return data_root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/digits_voc', help='output folder')
    parser.add_argument('--num-trainval', type=int, default=800)
    parser.add_argument('--num-test', type=int, default=300)
    parser.add_argument('--max-objects', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    print(generate_digits_voc(args.out, args.num_trainval, args.num_test, args.max_objects, args.seed))


if __name__ == '__main__':
    main()
