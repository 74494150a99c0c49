"""Bounding boxes of the shapes labeling tools draw besides rectangles. Pure Python (numpy for masks).

Every function returns ``(x1, y1, x2, y2)`` in pixels of the image, or None for a shape that covers
nothing (an empty mask, a polygon of fewer than two distinct points).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

BBox = Tuple[float, float, float, float]


def points_bbox(points: Sequence[Tuple[float, float]]) -> Optional[BBox]:
    """The box spanned by polygon / polyline vertices (already in pixels)."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def ellipse_bbox(cx: float, cy: float, rx: float, ry: float, rotation_deg: float = 0.0) -> BBox:
    """The axis-aligned box of an ellipse centred at ``(cx, cy)`` with radii ``rx``, ``ry`` (pixels),
    rotated by ``rotation_deg`` degrees."""
    t = math.radians(rotation_deg)
    half_w = math.hypot(rx * math.cos(t), ry * math.sin(t))
    half_h = math.hypot(rx * math.sin(t), ry * math.cos(t))
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def mask_bbox(mask: np.ndarray) -> Optional[BBox]:
    """The box of a 2-D mask's non-zero pixels, pixel edges included (a single pixel at (3, 4) gives
    ``(3, 4, 4, 5)``)."""
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    if not len(rows):
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


class _Bits:
    """Reads big-endian bit fields from a byte sequence."""

    def __init__(self, data: Sequence[int]) -> None:
        self.bits = np.unpackbits(np.asarray(data, dtype=np.uint8))
        self.pos = 0

    def read(self, width: int) -> int:
        if self.pos + width > len(self.bits):
            raise ValueError('the data ends early')
        value = 0
        for bit in self.bits[self.pos:self.pos + width]:
            value = (value << 1) | int(bit)
        self.pos += width
        return value


def decode_brush_rle(rle: Sequence[int], width: int, height: int) -> np.ndarray:
    """The mask of a Label Studio brush region (``value.format == 'rle'``).

    Label Studio stores the RGBA canvas of a brush stroke (``height x width x 4`` bytes, the alpha
    channel is the mask) run-length coded in a bit stream: a 32-bit value count, a 5-bit word size
    minus one, four 4-bit run-length field sizes minus one; then blocks, each a 1-bit kind, a 2-bit
    choice of run-length field and the run length minus one; a repeat block holds one word for the
    whole run, a literal block one word per value.

    Raises:
        ValueError: The data is not such a stream, or does not hold ``width x height`` RGBA values.
    """
    bits = _Bits(rle)
    count = bits.read(32)
    if count != width * height * 4:
        raise ValueError(f'it holds {count} values, not the {width}x{height}x4 of the image')
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    out = np.zeros(count, dtype=np.uint8)
    i = 0
    while i < count:
        repeat = bits.read(1)
        end = min(count, i + 1 + bits.read(sizes[bits.read(2)]))
        if repeat:
            out[i:end] = bits.read(word)
        else:
            for k in range(i, end):
                out[k] = bits.read(word)
        i = end
    return out.reshape(height, width, 4)[:, :, 3]


def coco_segmentation_bbox(segmentation: object, width: int, height: int) -> Optional[BBox]:
    """The box of a COCO ``segmentation``: polygons (lists of ``x, y, ...``) or RLE (a dict with
    ``counts``, compressed or not).

    Raises:
        ValueError: It is neither.
    """
    if isinstance(segmentation, list):
        points: List[Tuple[float, float]] = []
        for poly in segmentation:
            if not isinstance(poly, list) or len(poly) % 2:
                raise ValueError('a polygon is not a list of x, y pairs')
            points += [(float(poly[k]), float(poly[k + 1])) for k in range(0, len(poly), 2)]
        return points_bbox(points)
    if isinstance(segmentation, dict) and 'counts' in segmentation:
        from pycocotools import mask as coco_mask

        rle = dict(segmentation)
        if isinstance(rle['counts'], list):
            rle = coco_mask.frPyObjects(rle, height, width)
        return mask_bbox(coco_mask.decode(rle))
    raise ValueError('it is neither polygons nor RLE')
