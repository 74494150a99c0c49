"""Rows of a dense head: a candidate is one prior (anchor or point) of one level, and its index
(``source``) counts the priors level by level, location by location (row-major), prior by prior,
as every dense ``predict_by_feat`` flattens them. These functions go from a source index back to
its level and location, and read the head's maps or its classification layer there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ..family import FamilyPass, simple_conv, sparse_conv_mc

#: Names under which mmdet's dense heads keep their last classification conv (one shared by all
#: levels, or one per level).
CLASSIFIER_ATTRS = ('retina_cls', 'conv_cls', 'atss_cls', 'gfl_cls', 'vfnet_cls', 'rtm_cls', 'multi_level_conv_cls',
                    'reppoints_cls_out')


@dataclass
class DensePass(FamilyPass):
    """One forward of a dense head on a batch.

    Attributes:
        maps: The head's raw outputs: per output (class, box, and score-factor maps where the head
            has them), one ``[B, A_l * channels, H_l, W_l]`` map per level.
        taps: Per level, the input of the classification conv ``[B, C_in, H, W]`` (None when the
            head's classification layer was not found).
        shapes: Per level ``(H, W, priors per location)``.
        metas: Per image, its ``metainfo``.
        cache: Priors and decoded boxes, computed once per pass.
    """

    maps: Tuple[List[Tensor], ...]
    taps: Optional[List[Tensor]]
    shapes: List[Tuple[int, int, int]]
    metas: List[Dict[str, Any]]
    cache: Dict[Any, Any] = field(default_factory=dict)


@dataclass
class LevelOutputs:
    """One level's outputs for one image, one row per prior, as ``predict_by_feat`` reads them.

    Attributes:
        level: The level.
        start: The source index (candidate index in the image) of the level's first prior.
        cls: ``[N, C]`` class logits.
        box: ``[N, E]`` box regression outputs.
        factor: ``[N]`` score-factor logits (centerness, IoU, objectness), or None.
        priors: ``[N, 4]`` anchors (or ``[N, 2+]`` points) of the level.
    """

    level: int
    start: int
    cls: Tensor
    box: Tensor
    factor: Optional[Tensor]
    priors: Tensor


def image_levels(p: DensePass, image: int, priors: Sequence[Tensor]) -> Iterator[LevelOutputs]:
    """The per-level outputs of one image, flattened as every dense ``_predict_by_feat_single`` does."""
    starts = torch.tensor([0] + [h * w * n for h, w, n in p.shapes]).cumsum(0).tolist()
    factor_maps = p.maps[2] if len(p.maps) > 2 else None

    def rows(m: Tensor, per_prior: int) -> Tensor:
        return m[image].detach().permute(1, 2, 0).reshape(-1, per_prior)

    for level, (cls_map, box_map) in enumerate(zip(p.maps[0], p.maps[1])):
        priors_here = p.shapes[level][2]
        factor = rows(factor_maps[level], 1).squeeze(1) if factor_maps is not None else None
        yield LevelOutputs(level=level, start=starts[level], cls=rows(cls_map, cls_map.shape[1] // priors_here),
                           box=rows(box_map, box_map.shape[1] // priors_here), factor=factor, priors=priors[level])


def locate(p: DensePass, source: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(level, y, x, prior at the location)`` of each source index."""
    sizes = torch.tensor([h * w * n for h, w, n in p.shapes], device=source.device)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    level = torch.bucketize(source, starts, right=True) - 1
    local = source - starts[level]
    widths = torch.tensor([w for _, w, _ in p.shapes], device=source.device)
    per_loc = torch.tensor([n for _, _, n in p.shapes], device=source.device)
    position, base = local // per_loc[level], local % per_loc[level]
    return level, position // widths[level], position % widths[level], base


def gather(p: DensePass, maps: Sequence[Tensor], image: Tensor, source: Tensor, mirror: bool = False) -> Tensor:
    """The channels of per-level ``maps`` (``[B, A_l*K, H, W]``) at each row, ``[M, K]``; with
    ``mirror`` at the row's location mirrored along the width. Reads only those rows."""
    level, y, x, base = locate(p, source)
    channels = maps[0].shape[1] // p.shapes[0][2]
    out = maps[0].new_empty((len(source), channels))
    for lvl, m in enumerate(maps):
        rows = (level == lvl).nonzero().squeeze(1)
        if len(rows):
            col = p.shapes[lvl][1] - 1 - x[rows] if mirror else x[rows]
            found = m[image[rows], :, y[rows], col].view(len(rows), -1, channels)
            out[rows] = found[torch.arange(len(rows), device=found.device), base[rows]]
    return out


def find_classifiers(head: nn.Module, levels: int) -> Optional[List[nn.Module]]:
    """The last classification conv of each level (one of :data:`CLASSIFIER_ATTRS`), or None."""
    for name in CLASSIFIER_ATTRS:
        layer = getattr(head, name, None)
        if isinstance(layer, nn.Conv2d):
            return [layer for _ in range(levels)]
        if isinstance(layer, nn.ModuleList) and len(layer) == levels:
            return list(layer)
    return None


def sampled_outputs(p: DensePass, taps: Sequence[Tensor], classifiers: Sequence[nn.Module], image: Tensor,
                    source: Tensor, samples: int, dropout: float) -> Tensor:
    """``[T, M, channels]`` the classification layers' outputs for each row's prior with dropout
    drawn ``T`` times on their input ``taps``; the rest of the head runs once. Each location is
    evaluated once however many of its priors are rows."""
    channels = cast(nn.Conv2d, classifiers[0]).out_channels // p.shapes[0][2]
    logits = taps[0].new_zeros((samples, len(source), channels), dtype=torch.float32)
    level, y, x, base = locate(p, source)
    for lvl, (tap, layer) in enumerate(zip(taps, classifiers)):
        rows = (level == lvl).nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        height, width = p.shapes[lvl][0], p.shapes[lvl][1]
        loc_key = (image[rows] * height + y[rows]) * width + x[rows]
        locations, loc_of_row = torch.unique(loc_key, return_inverse=True)
        b = locations // (height * width)
        ly, lx = (locations // width) % height, locations % width
        if simple_conv(layer):
            out = sparse_conv_mc(layer, tap, b, ly, lx, samples, dropout)
        else:  # the whole layer on dropped-out inputs, read at the locations
            out = torch.stack([layer(nnf.dropout(tap, dropout, True))[b, :, ly, lx] for _ in range(samples)])
        out = out.view(samples, len(locations), -1, channels)
        logits[:, rows] = out[:, loc_of_row, base[rows]].float()
    return logits


def classifier_inputs(p: DensePass, taps: Sequence[Tensor], shared: bool, image: Tensor, source: Tensor) -> Tensor:
    """The classification conv's input at each row's location (its centre tap). Levels with their
    own classification conv (not ``shared``, SSD) are different layers: each row fills its level's
    block of a vector spanning all of them, so gradients of different layers never mix."""
    level, y, x, _ = locate(p, source)
    widths = [tap.shape[1] for tap in taps]
    offsets = [0] * len(widths) if shared else torch.tensor([0] + widths).cumsum(0).tolist()
    out = taps[0].new_zeros((len(source), widths[0] if shared else sum(widths)))
    for lvl, tap in enumerate(taps):
        rows = (level == lvl).nonzero().squeeze(1)
        out[rows, offsets[lvl]:offsets[lvl] + widths[lvl]] = tap[image[rows], :, y[rows], x[rows]]
    return out
