"""The detector families x acquisition methods that mmal supports, as the families declare them.

Each family (``mmal.models.detection``) declares what no detector of it can give and why
(``refuses``, ``has_proposals``: ``DetectorFamily.refusal``) and how it scores (``summary``); this
module names the test model of each family (``tests/family_configs/``) and the methods (columns),
and renders docs/detectors.md's table from the families' declarations.
``tests/test_detection_families.py`` runs every cell (a declared refusal must be refused before
training, every other cell must score), and checks that the page holds exactly this rendering:

    mmal sweep --matrix            # print the table
    mmal sweep --matrix --write    # put it into docs/detectors.md between its markers
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Dict, Set, Type

import mmal  # noqa: F401  (registers the detector families)
from mmal.engine.method import build_method
from mmal.errors import UserError
from mmal.fileio import atomic_write_text
from mmal.models.detection.family import DetectorFamily
from mmal.registry import DETECTOR_FAMILIES

#: The docs page holding the table and the zoo sweep's counts, relative to a checkout's root.
DOCS_PAGE = 'docs/detectors.md'
START, END = '<!-- support-matrix:start -->', '<!-- support-matrix:end -->'

#: family test config (tests/family_configs/<name>.py) -> (detector, mmdet base config, family handler)
FAMILIES = {
    'ssd': ('SSD', 'configs/demo/ssd_toyvoc.py (mmdet SSDHead)', 'SSDFamily'),
    'retinanet': ('RetinaNet', 'retinanet/retinanet_r18_fpn_1x_coco.py', 'DenseHeadFamily'),
    'fcos': ('FCOS', 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'DenseHeadFamily'),
    'atss': ('ATSS', 'atss/atss_r50_fpn_1x_coco.py', 'DenseHeadFamily'),
    'gfl': ('GFL', 'gfl/gfl_r50_fpn_1x_coco.py', 'GFLFamily'),
    'vfnet': ('VFNet', 'vfnet/vfnet_r50_fpn_1x_coco.py', 'DenseHeadFamily'),
    'paa': ('PAA', 'paa/paa_r50_fpn_1x_coco.py', 'PAAFamily'),
    'tood': ('TOOD', 'tood/tood_r50_fpn_1x_coco.py', 'TOODFamily'),
    'fovea': ('FoveaBox', 'foveabox/fovea_r50_fpn_4xb4-1x_coco.py', 'FoveaFamily'),
    'reppoints': ('RepPoints', 'reppoints/reppoints-moment_r50_fpn-gn_head-gn_1x_coco.py', 'RepPointsFamily'),
    'yolox': ('YOLOX', 'yolox/yolox_tiny_8xb8-300e_coco.py', 'YOLOXFamily'),
    'yolov3': ('YOLOv3', 'yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py', 'YOLOV3Family'),
    'rtmdet': ('RTMDet', 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 'DenseHeadFamily'),
    'faster_rcnn': ('Faster R-CNN', 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'TwoStageFamily'),
    'cascade_rcnn': ('Cascade R-CNN', 'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 'TwoStageFamily'),
    'mask_rcnn': ('Mask R-CNN', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'TwoStageFamily'),
    'detr': ('DETR', 'detr/detr_r18_8xb2-500e_coco.py', 'DETRFamily'),
    'deformable_detr': ('Deformable-DETR', 'deformable_detr/deformable-detr_r50_16xb2-50e_coco.py', 'DETRFamily'),
    'dino': ('DINO', 'dino/dino-4scale_r50_8xb2-12e_coco.py', 'DETRFamily'),
}

#: column -> (scorer config or None, selection config or None)
METHODS = {
    'Entropy': (dict(type='Entropy'), None),
    'Margin': (dict(type='Margin'), None),
    'BALD': (dict(type='BALD'), None),
    'Consistency': (dict(type='Consistency'), None),
    'CoreSet': (None, dict(type='KCenterGreedy')),
    'BADGE': (None, dict(type='BADGE')),
    'PPAL': (dict(type='DifficultyCalibratedUncertainty'), dict(type='CategoryMatching')),
    'LocStability': (dict(type='LocalizationStability'), None),
    'LocTightness': (dict(type='LocalizationTightness'), None),
}


def family(name: str) -> Type[DetectorFamily]:
    """The family class registered as ``name``."""
    return DETECTOR_FAMILIES.get(name)


def supported(method: str, family_name: str) -> bool:
    """Whether the family runs ``method``, as the family declares (``DetectorFamily.refusal``; the test of
    every cell checks that its pre-training check then refuses, or scores)."""
    return family(family_name).refusal(build_method(*METHODS[method]).requires) is None


def only_on() -> Dict[str, Set[str]]:
    """method -> the families of the matrix that run it, for the methods some family refuses by design."""
    names = sorted({f for _, _, f in FAMILIES.values()})
    out = {m: {f for f in names if supported(m, f)} for m in METHODS}
    return {m: fams for m, fams in out.items() if len(fams) < len(names)}


def render() -> str:
    """The docs table: one row per family, per method ✓ (its test cell scores) or — (refused)."""
    lines = ['| detector (mmdet base config) | family | ' + ' | '.join(METHODS) + ' | distribution, alignment |',
             '|---|---|' + ':-:|' * len(METHODS) + '---|']
    for detector, base, family_name in FAMILIES.values():
        cells = ' | '.join('✓' if supported(m, family_name) else '—' for m in METHODS)
        lines.append(f'| {detector} (`{base}`) | `{family_name}` | {cells} | {family(family_name).summary} |')
    return '\n'.join(lines)


def readme_section(text: str, start: str = START, end: str = END) -> str:
    """What the page holds between the markers ``start`` and ``end``."""
    found = re.search(re.escape(start) + r'\n(.*?)\n' + re.escape(end), text, flags=re.S)
    return found.group(1) if found else ''


def write_readme_section(section: str, path: str = DOCS_PAGE, start: str = START, end: str = END) -> None:
    """Put ``section`` into the page at ``path`` between the markers (written whole, atomically).

    Raises:
        UserError: The page is missing or has no markers.
    """
    if not osp.isfile(path):
        raise UserError(f'{path} does not exist; run this from a checkout of mmal (or pass the page to write).')
    with open(path) as f:
        text = f.read()
    if start not in text or end not in text:
        raise UserError(f'{path} has no {start} ... {end} markers; add the two markers where the section goes.')
    text = re.sub(re.escape(start) + r'.*?' + re.escape(end), lambda _: f'{start}\n{section}\n{end}', text,
                  flags=re.S)
    atomic_write_text(path, text)
