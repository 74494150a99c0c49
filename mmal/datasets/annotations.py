"""Checking a detection pool's annotations before anything trains on them, with the user's policy.

Three kinds of problems, each refused by default with one sentence naming the first offending file
and how many there are; ``active_learning.annotations`` chooses otherwise (and the run says what
it did, never silently):

- ``outside``: a box reaching outside the image (by more than a pixel): ``'refuse'`` or ``'clip'``
  (cut to the image; a box left with no area counts as ``degenerate``);
- ``degenerate``: a box of zero or negative width or height: ``'refuse'`` or ``'skip'`` (dropped);
- ``unknown_class``: an object whose class is not one of the dataset's: ``'refuse'`` or ``'skip'``
  (what mmdet's datasets do without a word).

VOC XML is read against its schema first (a ``size`` of positive integers, every ``object`` with a
``name`` and a ``bndbox`` of four numbers), so a damaged file is named instead of failing inside
mmdet's parser. Other datasets are checked on the boxes mmdet parsed (their unknown classes are the
dataset's own concern).
"""
from __future__ import annotations

import copy
import os.path as osp
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmdet.registry import DATASETS

from ..errors import UserError
from ..schema import read_json

#: The choices of each kind of problem; the first is the default.
POLICIES = dict(outside=('refuse', 'clip'), degenerate=('refuse', 'skip'), unknown_class=('refuse', 'skip'))
#: Pixels a box may overshoot the image (rounding of labeling tools, VOC's 1-based coordinates).
TOLERANCE = 1.0
FIXES = dict(
    outside="correct those boxes, or set active_learning.annotations=dict(outside='clip') to cut them to the image",
    degenerate="correct or delete those boxes, or set active_learning.annotations=dict(degenerate='skip')",
    unknown_class="fix those names, add the classes to the dataset's metainfo, or set "
                  "active_learning.annotations=dict(unknown_class='skip')")
WHAT = dict(outside='a box outside the image', degenerate='a box of zero or negative size',
            unknown_class='an object of an unknown class')


@dataclass
class AnnotationPolicy:
    """What to do with each kind of problem (see the module docstring)."""

    outside: str = 'refuse'
    degenerate: str = 'refuse'
    unknown_class: str = 'refuse'

    @classmethod
    def from_cfg(cls, cfg: Optional[Dict[str, Any]]) -> 'AnnotationPolicy':
        """The policy of ``active_learning.annotations``.

        Raises:
            UserError: An unknown key or choice.
        """
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(POLICIES)
        if unknown:
            raise UserError(f'active_learning.annotations has unknown keys {sorted(unknown)}; known keys: '
                            f'{list(POLICIES)}.')
        for key, value in cfg.items():
            if value not in POLICIES[key]:
                raise UserError(f'active_learning.annotations.{key} must be one of {POLICIES[key]}, got {value!r}.')
        return cls(**cfg)

    @property
    def changes_boxes(self) -> bool:
        """Whether the training data must be rewritten (clipped or skipped boxes)."""
        return self.outside == 'clip' or self.degenerate == 'skip'


@dataclass
class Findings:
    """Problems found, per kind: where each is (``file (detail)``)."""

    places: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str) -> None:
        self.places.setdefault(kind, []).append(where)

    def count(self, kind: str) -> int:
        return len(self.places.get(kind, []))


def _number(node: Optional[ET.Element], tag: str, path: str, where: str) -> float:
    child = node.find(tag) if node is not None else None
    text = child.text.strip() if child is not None and child.text else ''
    try:
        return float(text)
    except ValueError:
        raise UserError(f'{path}: {where} <{tag}> is {text!r}, not a number; fix that annotation file.') from None


def read_voc_xml(path: str) -> Tuple[Optional[Tuple[int, int]], List[Tuple[str, List[float]]]]:
    """A VOC annotation file checked against its schema: ``(width, height)`` (None without a
    ``size``) and ``(name, [x1, y1, x2, y2])`` per object, in mmdet's coordinates (1 subtracted).

    Raises:
        UserError: The file does not parse or does not fit the schema (names the element).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise UserError(f'{path} is not valid XML ({err}); fix or remove that annotation file.') from None
    except OSError as err:
        raise UserError(f'{path} cannot be read ({err.strerror or err}); restore that annotation file.') from None
    size = root.find('size')
    wh = None
    if size is not None:
        width, height = (_number(size, key, path, '<size>') for key in ('width', 'height'))
        if width <= 0 or height <= 0 or width != int(width) or height != int(height):
            raise UserError(f'{path}: <size> is {width:g}x{height:g}, not positive whole pixels; fix that annotation '
                            'file.')
        wh = int(width), int(height)
    objects = []
    for k, obj in enumerate(root.findall('object')):
        node = obj.find('name')
        name = (node.text or '').strip() if node is not None else ''
        if not name:
            raise UserError(f'{path}: <object> {k + 1} has no <name>; fix that annotation file.')
        box = obj.find('bndbox')
        if box is None:
            raise UserError(f'{path}: <object> {k + 1} ({name}) has no <bndbox>; fix that annotation file.')
        coords = [int(_number(box, tag, path, f'<object> {k + 1}')) - 1 for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
        objects.append((name, [float(c) for c in coords]))
    return wh, objects


def check_box(box: Sequence[float], width: float, height: float) -> Optional[str]:
    """The kind of problem of one box (``'outside'``, ``'degenerate'``) or None."""
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        return 'degenerate'
    if x1 < -TOLERANCE or y1 < -TOLERANCE or x2 > width + TOLERANCE or y2 > height + TOLERANCE:
        return 'outside'
    return None


def leaves(dataset: Any) -> Iterator[Any]:
    """The leaf datasets of a (wrapped, concatenated) dataset."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from leaves(child)
    elif hasattr(dataset, 'dataset'):
        yield from leaves(dataset.dataset)
    else:
        yield dataset


def _voc_ids(leaf: Any) -> Optional[List[str]]:
    """The image ids a VOC-style (XML) dataset lists, or None for another kind of dataset."""
    if not (hasattr(leaf, 'ann_subdir') and hasattr(leaf, 'sub_data_root') and bool(getattr(leaf, 'ann_file', ''))):
        return None
    with open(leaf.ann_file) as f:
        return [line.strip() for line in f if line.strip()]


def find_annotation_problems(dataset: Any) -> Findings:
    """Every problem of the dataset's annotations (see the module docstring).

    Raises:
        UserError: A VOC annotation file does not fit its schema.
    """
    found = Findings()
    for leaf in leaves(dataset):
        classes = set(leaf.metainfo.get('classes') or ())
        ids = _voc_ids(leaf)
        if ids is not None:
            for img_id in ids:
                path = osp.join(leaf.sub_data_root, leaf.ann_subdir, f'{img_id}.xml')
                wh, objects = read_voc_xml(path)
                for k, (name, box) in enumerate(objects):
                    where = f'{path} <object> {k + 1} ({name}, {", ".join(f"{v:g}" for v in box)}'
                    if name not in classes:
                        found.add('unknown_class', f'{path} <object> {k + 1} ({name!r})')
                    elif wh is not None and (kind := check_box(box, *wh)) is not None:
                        found.add(kind, f'{where} in {wh[0]}x{wh[1]})')
            continue
        for i in range(len(leaf)):
            info = leaf.get_data_info(i)
            for k, inst in enumerate(info.get('instances') or []):
                kind = check_box(inst['bbox'], info['width'], info['height']) if 'bbox' in inst else None
                if kind is not None:
                    found.add(kind, f'{info.get("img_path", i)} instance {k + 1} ({inst["bbox"]} in '
                                    f'{info["width"]}x{info["height"]})')
    return found


def apply_policy(found: Findings, policy: AnnotationPolicy) -> List[str]:
    """Refuse what the policy refuses; else say what will be done.

    Returns:
        One line per kind that is clipped or skipped (for the run's log).

    Raises:
        UserError: The first kind the policy refuses (names the first file and the count).
    """
    notes = []
    for kind in POLICIES:
        count = found.count(kind)
        if not count:
            continue
        first = found.places[kind][0]
        more = f' (and {count - 1} more)' if count > 1 else ''
        if getattr(policy, kind) == 'refuse':
            raise UserError(f'the pool has {WHAT[kind]} at {first}{more}; {FIXES[kind]}.')
        notes.append(f'{getattr(policy, kind)} {count} x {WHAT[kind]} (first: {first}), as '
                     f'active_learning.annotations.{kind} says')
    return notes


def sanitize_instances(info: Dict[str, Any], policy: AnnotationPolicy) -> Dict[str, Any]:
    """A copy of a data info whose boxes follow the policy (clipped to the image, degenerate ones dropped)."""
    info = copy.deepcopy(info)
    kept = []
    for inst in info.get('instances') or []:
        box = inst.get('bbox')
        if box is not None and policy.outside == 'clip':
            box = [min(max(box[0], 0), info['width']), min(max(box[1], 0), info['height']),
                   min(max(box[2], 0), info['width']), min(max(box[3], 0), info['height'])]
            inst['bbox'] = box
        if box is not None and policy.degenerate == 'skip' and not (box[2] > box[0] and box[3] > box[1]):
            continue
        kept.append(inst)
    info['instances'] = kept
    return info


@DATASETS.register_module()
class SanitizedAnnotations:
    """A detection dataset whose boxes follow an :class:`AnnotationPolicy` (clip, skip).

    Args:
        dataset: The dataset or its config.
        policy: ``active_learning.annotations``.
    """

    def __init__(self, dataset: Any, policy: Optional[Dict[str, Any]] = None) -> None:
        self.dataset: Any = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.policy = AnnotationPolicy.from_cfg(policy)

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    @property
    def pipeline(self) -> Any:
        return self.dataset.pipeline

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        return sanitize_instances(self.dataset.get_data_info(idx), self.policy)

    def __getitem__(self, idx: int) -> Any:
        for k in range(len(self)):  # a transform may drop an image (mmengine then takes another one)
            data = self.dataset.pipeline(self.get_data_info((idx + k) % len(self)))
            if data is not None:
                return data
        raise RuntimeError('the training pipeline dropped every image of the dataset.')

    def __len__(self) -> int:
        return len(self.dataset)


@DATASETS.register_module()
class Relabeled(SanitizedAnnotations):
    """A detection dataset whose images listed in ``labels_file`` carry the labels recorded there
    (what a simulated annotator returned, :mod:`mmal.active.annotator`) instead of their own.

    Args:
        dataset: The dataset or its config.
        labels_file: A JSON file whose ``"instances"`` maps a dataset index (as a string) to the
            image's instances (mmdet's ``bbox``, ``bbox_label``, ``ignore_flag``).
        policy: ``active_learning.annotations`` (applied to the images not listed).
    """

    def __init__(self, dataset: Any, labels_file: str, policy: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(dataset, policy)
        found = read_json(labels_file, 'the driver writes it; run again with --resume to rewrite it')['instances']
        self.instances = {int(k): v for k, v in found.items()}

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if idx in self.instances:
            info = dict(info, instances=copy.deepcopy(self.instances[idx]))
        return info
