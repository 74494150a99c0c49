"""A deterministic synthetic detection dataset in PASCAL VOC layout.

Coloured shapes on textured backgrounds. The class of an object is its shape (its colour is random),
the pool is imbalanced on purpose (one rare class) and holds near-duplicate images, so that an
acquisition function has something to find and random sampling has a handicap. The test split
draws classes uniformly, so the rare class weighs as much as any other in the VOC mAP.

The output is read unchanged by mmdet's ``VOCDataset`` and ``VOCMetric``::

    <root>/VOCdevkit/ToyVOC/JPEGImages/<id>.jpg
    <root>/VOCdevkit/ToyVOC/Annotations/<id>.xml
    <root>/VOCdevkit/ToyVOC/ImageSets/Main/{trainval,test}.txt

Run ``python -m mmal.datasets.toy_voc --out data/toy_voc`` (the demo does it when missing).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import cv2
import numpy as np

TOY_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'diamond', 'cross')
#: Class frequencies of the trainval pool; ``cross`` is the rare class.
POOL_FREQUENCIES: Tuple[float, ...] = (0.32, 0.30, 0.22, 0.13, 0.03)
_DONE_MARKER = '.mmal_toy_voc_complete'
#: Changes whenever the generator writes other files for the same spec: a dataset written by an older
#: generator is rewritten, so the images a run reads are a function of the code and the spec alone.
GENERATOR_VERSION = 'toy_voc 2 (ToyVOC folder)'


@dataclass(frozen=True)
class ToyVOCSpec:
    """What to generate.

    Args:
        num_trainval: Images in the pool (near-duplicates included).
        num_test: Images in the test split.
        image_size: Side of the square images in pixels.
        duplicate_fraction: Share of pool images that are near-copies of another pool image.
        max_objects: At most this many objects per image (at least one).
        seed: Seed of the one random generator that decides everything.
    """

    num_trainval: int = 800
    num_test: int = 300
    image_size: int = 128
    duplicate_fraction: float = 0.15
    max_objects: int = 3
    seed: int = 0


Box = Tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, inclusive-exclusive


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour noise plus stripes and grain: a texture, not a flat colour."""
    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    img += (rng.uniform(5, 25) * stripes)[..., None]
    img += np.asarray(rng.normal(0, 8, size=img.shape), dtype=np.float32)
    for _ in range(rng.integers(1, 4)):  # thin distractor lines
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(img, p1, p2, color, 1, cv2.LINE_AA)
    return img


def _draw_shape(img: np.ndarray, cls: str, box: Box, color: Tuple[float, ...]) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if cls == 'circle':
        cv2.ellipse(img, (int(cx), int(cy)), (w // 2, h // 2), 0, 0, 360, color, -1, cv2.LINE_AA)
        return
    pts: List[Tuple[float, float]]
    if cls == 'square':
        pts = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    elif cls == 'triangle':
        pts = [(cx, y1), (x2, y2), (x1, y2)]
    elif cls == 'diamond':
        pts = [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    elif cls == 'cross':
        t = max(w, h) / 6
        pts = [(cx - t, y1), (cx + t, y1), (cx + t, cy - t), (x2, cy - t), (x2, cy + t),
               (cx + t, cy + t), (cx + t, y2), (cx - t, y2), (cx - t, cy + t), (x1, cy + t),
               (x1, cy - t), (cx - t, cy - t)]
    else:
        raise ValueError(f'unknown toy class {cls!r}; expected one of {TOY_CLASSES}')
    poly = np.round(np.array(pts, dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(img, [poly], color, cv2.LINE_AA)


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _render(rng: np.random.Generator, spec: ToyVOCSpec,
            freqs: Sequence[float]) -> Tuple[np.ndarray, List[Tuple[str, Box]]]:
    size = spec.image_size
    img = _background(rng, size)
    objects: List[Tuple[str, Box]] = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        for _try in range(20):
            side = int(rng.integers(size // 7, int(size // 2.6)))
            aspect = rng.uniform(0.8, 1.25)
            w, h = side, max(8, int(side * aspect))
            h = min(h, size - 2)
            x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            box = (x1, y1, x1 + w, y1 + h)
            if all(_iou(box, b) < 0.05 for _, b in objects):
                break
        else:
            continue
        cls = TOY_CLASSES[int(rng.choice(len(TOY_CLASSES), p=freqs))]
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        _draw_shape(img, cls, box, color)
        objects.append((cls, box))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _near_duplicate(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Same content, slightly different pixels (brightness, grain); boxes are unchanged."""
    out = img.astype(np.float32) * rng.uniform(0.92, 1.08) + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _annotation_xml(img_id: str, size: int, objects: Sequence[Tuple[str, Box]]) -> str:
    parts = [
        '<annotation>', '  <folder>ToyVOC</folder>', f'  <filename>{escape(img_id)}.jpg</filename>',
        f'  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>',
        '  <segmented>0</segmented>'
    ]
    for cls, (x1, y1, x2, y2) in objects:
        # VOC boxes are 1-based and inclusive.
        parts += [
            '  <object>', f'    <name>{cls}</name>', '    <pose>Unspecified</pose>',
            '    <truncated>0</truncated>', '    <difficult>0</difficult>',
            f'    <bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>'
            f'<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>', '  </object>'
        ]
    parts.append('</annotation>')
    return '\n'.join(parts) + '\n'


def _write_split(voc: str, rng: np.random.Generator, spec: ToyVOCSpec, split: str, num: int,
                 freqs: Sequence[float], dup_fraction: float, first_index: int) -> List[str]:
    ids: List[str] = []
    rendered: List[Tuple[np.ndarray, List[Tuple[str, Box]]]] = []
    for i in range(num):
        if rendered and rng.random() < dup_fraction:
            src_img, objects = rendered[int(rng.integers(len(rendered)))]
            img = _near_duplicate(rng, src_img)
        else:
            img, objects = _render(rng, spec, freqs)
            rendered.append((img, objects))
        img_id = f'{split}_{first_index + i:06d}'
        # Fixed JPEG quality: the same seed gives the same bytes on the same OpenCV build.
        cv2.imwrite(osp.join(voc, 'JPEGImages', f'{img_id}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(osp.join(voc, 'Annotations', f'{img_id}.xml'), 'w') as f:
            f.write(_annotation_xml(img_id, spec.image_size, objects))
        ids.append(img_id)
    with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    return ids


def _marker_text(spec: 'ToyVOCSpec') -> str:
    return f'{GENERATOR_VERSION}\n{spec}\n'


def toy_voc_exists(root: str, spec: Optional['ToyVOCSpec'] = None) -> bool:
    """Whether a complete toy dataset of this generator (and of ``spec``, when given) is at ``root``."""
    marker = osp.join(root, _DONE_MARKER)
    if not osp.isfile(marker):
        return False
    with open(marker) as f:
        lines = f.read().splitlines()
    return lines[:1] == [GENERATOR_VERSION] and (spec is None or lines[1:2] == [str(spec)])


def generate_toy_voc(root: str, spec: ToyVOCSpec = ToyVOCSpec(), overwrite: bool = False) -> str:
    """Write the toy dataset under ``root`` and return the data root for mmdet (``root/VOCdevkit/``).

    The dataset is built in a temporary folder beside ``root`` and moved into place at the end, so an
    interrupted run never leaves a half-written dataset. An existing complete dataset of the same
    generator and spec is kept unless ``overwrite`` is set; one written by an older generator or
    with another spec is replaced.

    Args:
        root: Folder to create (for example ``data/toy_voc``).
        spec: What to generate.
        overwrite: Replace a complete dataset that is already there.

    Returns:
        The ``data_root`` to put in an mmdet config.
    """
    data_root = osp.join(root, 'VOCdevkit') + os.sep
    if toy_voc_exists(root, spec) and not overwrite:
        return data_root
    if osp.exists(root) and not osp.isfile(osp.join(root, _DONE_MARKER)) and os.listdir(root):
        raise FileExistsError(f'{root} exists and is not a toy VOC dataset made by mmal; '
                              'choose another output folder or remove it.')

    def fill(voc: str) -> None:
        rng = np.random.default_rng(spec.seed)
        uniform = [1.0 / len(TOY_CLASSES)] * len(TOY_CLASSES)
        _write_split(voc, rng, spec, 'trainval', spec.num_trainval, POOL_FREQUENCIES, spec.duplicate_fraction, 0)
        _write_split(voc, rng, spec, 'test', spec.num_test, uniform, 0.0, 0)

    write_voc_atomically(root, 'ToyVOC', _DONE_MARKER, _marker_text(spec), fill)
    return data_root


def write_voc_atomically(root: str, folder: str, marker: str, marker_text: str,
                         fill: Callable[[str], None]) -> None:
    """Make ``root`` through a temporary folder beside it, so that an interrupted run never leaves a
    half-written data set: ``fill(voc)`` writes into ``VOCdevkit/<folder>`` (its ``JPEGImages``,
    ``Annotations`` and ``ImageSets/Main`` made), the ``marker`` file (``marker_text``) comes last,
    and the folder replaces ``root``."""
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{folder.lower()}_tmp_', dir=parent)
    try:
        voc = osp.join(tmp, 'VOCdevkit', folder)
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(voc, sub))
        fill(voc)
        with open(osp.join(tmp, marker), 'w') as f:
            f.write(marker_text)
        if osp.exists(root):
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/toy_voc', help='output folder')
    parser.add_argument('--num-trainval', type=int, default=ToyVOCSpec.num_trainval)
    parser.add_argument('--num-test', type=int, default=ToyVOCSpec.num_test)
    parser.add_argument('--image-size', type=int, default=ToyVOCSpec.image_size)
    parser.add_argument('--seed', type=int, default=ToyVOCSpec.seed)
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    spec = ToyVOCSpec(num_trainval=args.num_trainval, num_test=args.num_test,
                      image_size=args.image_size, seed=args.seed)
    print(generate_toy_voc(args.out, spec, overwrite=args.overwrite))


if __name__ == '__main__':
    main()
