"""What comes back from annotators: Label Studio's JSON export and COCO (CVAT, Label Studio). Pure Python.

Both readers check the whole file before anything is written and return exactly the boxes people
drew, in pixels of the frame the model trains in (the pool's image size, EXIF orientation applied),
or refuse the file in one sentence that names the first problem, how many there are of its kind,
and the fix. What each format's import does with what it cannot represent:

- rectangles (``rectanglelabels``, or ``<Rectangle>`` + ``<Labels>``, a COCO ``bbox``) are imported;
  a negative width / height (Label Studio writes one when a box is drawn right-to-left) is the same
  rectangle; a box past the edge by under half a pixel is clipped;
- rotated boxes (Label Studio's ``rotation``, CVAT's ``attributes.rotation``) are refused;
- polygons, ellipses and brush masks (Label Studio), polygon / RLE segmentations (COCO) are refused,
  or imported as their bounding box with ``convert`` naming their kind (and counted);
- keypoints are refused: a point has no box;
- results that are not shapes (choices, text areas, ratings) are counted and ignored;
- an image whose size in the export differs from the pool's by more than a pixel (a resized copy, a
  photo whose EXIF orientation the tool did not apply) is refused, naming both sizes;
- images are matched by ``data.mmal_id`` (mmal's tasks) or by their path relative to the image root
  (:mod:`.matching`); images labeled in an earlier cycle, and tasks mmal exported in an earlier cycle
  (a Label Studio project reused across cycles), are counted and ignored;
- a task without an answer (no annotation, or only cancelled ones) is a skipped image: refused, or
  returned to the pool with ``skipped_to_pool``; "no objects" is an answer (the image is labeled empty);
- several answers for one image: the one marked ground truth, else refused, or the latest with
  ``several='latest'``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ..errors import UserError
from .formats import BatchImage, Box, Labeled
from .matching import AmbiguousName, PoolIndex
from .shapes import BBox, coco_segmentation_bbox, decode_brush_rle, ellipse_bbox, mask_bbox, points_bbox

#: Boxes may overshoot the image by this much (pixels) from rounding in the tools; they are clipped.
EDGE_TOLERANCE = 0.5
#: An image size in the export may differ from the pool's by this much (pixels) from rounding.
SIZE_TOLERANCE = 1
#: Shapes that ``convert`` may turn into their bounding box.
CONVERTIBLE = ('polygon', 'ellipse', 'brush', 'segmentation')
#: Decimals kept of a pixel coordinate computed from percent (undoes the float error of the round trip).
PIXEL_DECIMALS = 6


@dataclass
class Returned:
    """What a returned file holds, checked.

    Attributes:
        labeled: One entry per answered image of the batch.
        skipped: Pool ids of batch images without an answer (returned to the pool).
        earlier: How many tasks / images belong to earlier cycles (ignored).
        converted: Shapes imported as their bounding box, by kind.
        ignored: Results that are not shapes, by type.
    """

    labeled: List[Labeled]
    skipped: List[int]
    earlier: int = 0
    converted: Dict[str, int] = field(default_factory=dict)
    ignored: Dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> int:
        """How many answered images came back without a box."""
        return sum(not i.boxes for i in self.labeled)


@dataclass
class ImportContext:
    """What a returned file is checked against.

    Args:
        batch: The batch out for labeling.
        pool: ``(pool id, relative path)`` of every pool image.
        earlier_ids: Pool ids labeled in earlier cycles.
        cycle: The project's current cycle.
        classes: The project's classes.
        skipped_to_pool: Return unanswered images to the pool instead of refusing the file.
        convert: Kinds of :data:`CONVERTIBLE` shapes to import as their bounding box.
        several: ``'refuse'`` several answers for one image (unless one is ground truth), or take the
            ``'latest'``.
    """

    batch: Sequence[BatchImage]
    pool: Sequence[Tuple[int, str]]
    earlier_ids: FrozenSet[int]
    cycle: int
    classes: Sequence[str]
    skipped_to_pool: bool = False
    convert: FrozenSet[str] = frozenset()
    several: str = 'refuse'

    def __post_init__(self) -> None:
        self.by_id = {i.id: i for i in self.batch}
        self.index = PoolIndex(self.pool)
        self.files = dict(self.pool)
        self.pool_ids = set(self.files)


FIXES = {
    'a malformed entry': 'export again from the labeling tool (Label Studio: JSON; CVAT: COCO 1.0).',
    'an image that is not in the project\'s pool': 'import labels of this project\'s images only (matched by their '
                                                   'path relative to its image folder).',
    'a file name that fits several pool images': 'export with each image\'s path relative to the image folder (or '
                                                 'its full URL), or keep mmal\'s task data (mmal_id).',
    'an image that is not in the batch': 'import the labels of this cycle\'s batch only.',
    'an image labeled twice': 'keep one task per image (delete the duplicate task) and export again.',
    'several answers for one image': 'keep one annotation per task (or mark one as ground truth), or pass '
                                     '--annotations latest to take the most recent one.',
    'an image size that differs from the pool\'s': 'label the very file the project holds (not a resized or '
                                                   're-oriented copy), or start a project from the files you label.',
    'an image shown rotated': 'set the image\'s rotation back to 0 in the labeling tool and export again.',
    'an unknown class': 'label with the project\'s classes only (see its labeling config).',
    'a box without a class': 'give every box one of the project\'s classes.',
    'a box with several classes': 'give every box exactly one class.',
    'a box outside the image': 'correct the box in the labeling tool and export again.',
    'a box of zero or negative size': 'correct or delete the box in the labeling tool and export again.',
    'a rotated box': 'mmal trains axis-aligned boxes; draw the box without rotation.',
    'a polygon': 'pass --convert polygon to import each as its bounding box, or draw rectangles.',
    'an ellipse': 'pass --convert ellipse to import each as its bounding box, or draw rectangles.',
    'a brush mask': 'pass --convert brush to import each as its bounding box, or draw rectangles.',
    'a segmentation': 'pass --convert segmentation to import each as the bounding box of its shape, or export '
                      'rectangles.',
    'a keypoint': 'mmal trains boxes and a point has none; draw a rectangle around the object.',
    'an image without an answer (skipped)': 'label it, or pass --skipped pool to return such images to the '
                                            'unlabeled pool.',
}
#: The kind of each convertible shape in :data:`FIXES`.
SHAPE_KIND = {'polygon': 'a polygon', 'ellipse': 'an ellipse', 'brush': 'a brush mask',
              'segmentation': 'a segmentation'}


class _Checks:
    """Collects what is wrong with a returned file, to report the first offence and the count."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: Dict[str, List[str]] = {}

    def add(self, kind: str, where: str) -> None:
        self.found.setdefault(kind, []).append(where)

    def raise_first(self) -> None:
        for kind, places in self.found.items():
            more = f' (and {len(places) - 1} more)' if len(places) > 1 else ''
            raise UserError(f'{self.path}: {kind} at {places[0]}{more}; {FIXES[kind]}')


class _Bad(Exception):
    """A malformed field; its text says which and why."""


def _number(value: Any, what: str) -> float:
    """A finite JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f'{what} is {_show(value)}, not a number')
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _Bad(f'{what} is {_show(value)}, not a finite number')
    return number


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _obj(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f'{what} is {_show(value)}, not an object')
    return value


def _list(value: Any, what: str) -> List[Any]:
    if not isinstance(value, list):
        raise _Bad(f'{what} is {_show(value)}, not a list')
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f'{what} is {_show(value)}, not a string')
    return value


class _Reader:
    """The state both readers share: the checks, the answers and the counts."""

    def __init__(self, ctx: ImportContext, path: str) -> None:
        self.ctx, self.checks = ctx, _Checks(path)
        self.answers: Dict[int, List[Box]] = {}
        self.earlier = 0
        self.converted: Counter = Counter()
        self.ignored: Counter = Counter()

    def locate(self, name: Any, where: str, mmal_id: Any = None, mmal_cycle: Any = None) -> Optional[int]:
        """The batch image an entry names; None when it is not one (reported, or of an earlier cycle)."""
        ctx = self.ctx
        if isinstance(mmal_id, int) and not isinstance(mmal_id, bool) and mmal_id in ctx.pool_ids:
            image_id = mmal_id
        else:
            try:
                found = ctx.index.find(name) if isinstance(name, str) and name else None
            except AmbiguousName as err:
                self.checks.add('a file name that fits several pool images', f'{where} ({err})')
                return None
            if found is None:
                self.checks.add('an image that is not in the project\'s pool', f'{where} ({_show(name)})')
                return None
            image_id = found
        from_earlier = isinstance(mmal_cycle, int) and not isinstance(mmal_cycle, bool) and mmal_cycle < ctx.cycle
        if image_id in ctx.by_id and not from_earlier:
            return image_id
        if from_earlier or image_id in ctx.earlier_ids:
            self.earlier += 1
            return None
        self.checks.add('an image that is not in the batch', f'{where} ({ctx.files[image_id]})')
        return None

    def check_size(self, image: BatchImage, width: Any, height: Any, where: str) -> bool:
        """Whether an export's stated image size is the pool's (missing sizes are not checked)."""
        if width is None and height is None:
            return True
        w, h = _number(width, 'its width'), _number(height, 'its height')
        if abs(w - image.width) <= SIZE_TOLERANCE and abs(h - image.height) <= SIZE_TOLERANCE:
            return True
        swapped = ' (the same size turned: an EXIF orientation applied by one side only)' if \
            abs(w - image.height) <= SIZE_TOLERANCE and abs(h - image.width) <= SIZE_TOLERANCE else ''
        self.checks.add('an image size that differs from the pool\'s',
                        f'{where} ({image.file_name}: {w:g}x{h:g} in the export, {image.width}x{image.height} in '
                        f'the pool{swapped})')
        return False

    def add_box(self, image: BatchImage, label: str, bbox: BBox, where: str, boxes: List[Box]) -> None:
        """Check one box (pixels of the pool's frame) and keep it."""
        x1, y1, x2, y2 = (round(v, PIXEL_DECIMALS) for v in bbox)
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        if label not in self.ctx.classes:
            self.checks.add('an unknown class', f'{where} ({label!r})')
            return
        if not (x2 > x1 and y2 > y1):
            self.checks.add('a box of zero or negative size', where)
            return
        w, h = image.width, image.height
        if x1 < -EDGE_TOLERANCE or y1 < -EDGE_TOLERANCE or x2 > w + EDGE_TOLERANCE or y2 > h + EDGE_TOLERANCE:
            self.checks.add('a box outside the image',
                            f'{where} ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f} in {w}x{h})')
            return
        boxes.append(Box(label=label, x1=max(x1, 0.0), y1=max(y1, 0.0), x2=min(x2, float(w)), y2=min(y2, float(h))))

    def shape(self, kind: str, where: str) -> bool:
        """Whether a convertible shape may be imported as its bounding box (else it is reported)."""
        if kind in self.ctx.convert:
            self.converted[kind] += 1
            return True
        self.checks.add(SHAPE_KIND[kind], where)
        return False

    def finish(self) -> Returned:
        ctx = self.ctx
        missing = [i for i in ctx.by_id if i not in self.answers]
        if missing and not ctx.skipped_to_pool:
            for i in missing:
                self.checks.add('an image without an answer (skipped)', ctx.by_id[i].file_name)
        self.checks.raise_first()
        return Returned(labeled=[Labeled(id=i, boxes=self.answers[i]) for i in ctx.by_id if i in self.answers],
                        skipped=missing, earlier=self.earlier, converted=dict(self.converted),
                        ignored=dict(self.ignored))


# -- Label Studio JSON --------------------------------------------------------------------------------------
#: Label Studio result types that draw a shape, by the kind of shape.
_LS_SHAPES = {'rectangle': 'rectangle', 'rectanglelabels': 'rectangle', 'polygon': 'polygon',
              'polygonlabels': 'polygon', 'ellipse': 'ellipse', 'ellipselabels': 'ellipse', 'brush': 'brush',
              'brushlabels': 'brush', 'keypoint': 'keypoint', 'keypointlabels': 'keypoint'}


def _label_of(group: List[Dict[str, Any]], where: str, reader: _Reader) -> Optional[str]:
    """The one class a region's results give (its ``*labels`` values), or None (reported)."""
    names: List[str] = []
    for result in group:
        value = _obj(result.get('value'), 'a result\'s value')
        for key, found in value.items():
            if key.endswith('labels'):
                names += [_text(n, f'value.{key}[]') for n in _list(found, f'value.{key}')]
    names = list(dict.fromkeys(names))
    if not names:
        reader.checks.add('a box without a class', where)
        return None
    if len(names) > 1:
        reader.checks.add('a box with several classes', f'{where} ({", ".join(names)})')
        return None
    return names[0]


def _region(group: List[Dict[str, Any]], image: BatchImage, where: str, reader: _Reader, boxes: List[Box]) -> None:
    """One region: the results of one annotation that share an id (a ``<Rectangle>`` and its
    ``<Labels>``, or a shape and per-region text)."""
    shapes = [r for r in group if str(r.get('type', '')).lower() in _LS_SHAPES]
    labels_only = [r for r in group if str(r.get('type', '')).lower() == 'labels']
    if not shapes and labels_only and all(k in _obj(labels_only[0].get('value'), 'a result\'s value')
                                          for k in ('x', 'y', 'width', 'height')):
        shapes = labels_only[:1]  # <Labels> linked to a <Rectangle>: the labels result carries the geometry
    for result in group:
        kind = str(result.get('type', '')).lower()
        if kind not in _LS_SHAPES and kind != 'labels':
            reader.ignored[kind or 'untyped'] += 1
    if not shapes:
        return
    result = shapes[0]
    kind = _LS_SHAPES.get(str(result.get('type', '')).lower(), 'rectangle')
    if kind == 'keypoint':
        reader.checks.add('a keypoint', where)
        return
    if not reader.check_size(image, result.get('original_width'), result.get('original_height'), where):
        return
    if result.get('image_rotation') not in (None, 0, 0.0):
        reader.checks.add('an image shown rotated', f'{where} ({_show(result.get("image_rotation"))} degrees)')
        return
    label = _label_of(group, where, reader)
    if label is None:
        return
    value = _obj(result.get('value'), 'a result\'s value')
    w, h = image.width, image.height
    rotation = _number(value.get('rotation', 0), 'value.rotation') % 360.0
    if kind == 'rectangle':
        if rotation != 0.0:
            reader.checks.add('a rotated box', f'{where} ({rotation:g} degrees)')
            return
        x, y = _number(value.get('x'), 'value.x'), _number(value.get('y'), 'value.y')
        bw, bh = _number(value.get('width'), 'value.width'), _number(value.get('height'), 'value.height')
        reader.add_box(image, label, (x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100), where, boxes)
        return
    if not reader.shape(kind, where):
        return
    if kind == 'polygon':
        points = []
        for point in _list(value.get('points'), 'value.points'):
            if len(_list(point, 'value.points[]')) != 2:
                raise _Bad('value.points[] is not an x, y pair')
            points.append((_number(point[0], 'value.points[][0]') * w / 100,
                           _number(point[1], 'value.points[][1]') * h / 100))
        bbox = points_bbox(points)
    elif kind == 'ellipse':
        bbox = ellipse_bbox(_number(value.get('x'), 'value.x') * w / 100, _number(value.get('y'), 'value.y') * h / 100,
                            _number(value.get('radiusX'), 'value.radiusX') * w / 100,
                            _number(value.get('radiusY'), 'value.radiusY') * h / 100, rotation)
    else:
        rle = [int(_number(b, 'value.rle[]')) for b in _list(value.get('rle'), 'value.rle')]
        if any(not 0 <= b < 256 for b in rle):
            raise _Bad('value.rle holds values outside 0..255')
        try:
            bbox = mask_bbox(decode_brush_rle(rle, w, h))
        except ValueError as err:
            raise _Bad(f'value.rle cannot be decoded ({err})') from None
    if bbox is None:
        reader.checks.add('a box of zero or negative size', f'{where} (an empty {kind})')
        return
    reader.add_box(image, label, bbox, where, boxes)


def _answer(annotations: List[Any], where: str, reader: _Reader) -> Optional[Dict[str, Any]]:
    """A task's one answer (None: skipped, or reported)."""
    done = [a for a in (_obj(a, 'an annotation') for a in annotations) if not a.get('was_cancelled')]
    if len(done) > 1:
        truth = [a for a in done if a.get('ground_truth') is True]
        if len(truth) == 1:
            done = truth
        elif reader.ctx.several == 'latest':
            done = [max(done, key=lambda a: (str(a.get('updated_at') or a.get('created_at') or ''),
                                             a.get('id') if isinstance(a.get('id'), int) else 0))]
        else:
            reader.checks.add('several answers for one image', f'{where} ({len(done)} annotations)')
            return None
    return done[0] if done else None


def read_labelstudio(tasks: Any, path: str, ctx: ImportContext) -> Returned:
    """The labels of a Label Studio JSON export (see the module docstring).

    Args:
        tasks: The parsed export (a list of tasks).
        path: The file, for messages.
        ctx: What it is checked against.

    Raises:
        UserError: The first problem found, with how many there are of its kind.
    """
    if not isinstance(tasks, list):
        raise UserError(f'{path} is not a Label Studio JSON export (a list of tasks); export the project as JSON.')
    if tasks and isinstance(tasks[0], dict) and 'data' not in tasks[0] and 'image' in tasks[0]:
        raise UserError(f'{path} is Label Studio\'s JSON-MIN export, which drops the image sizes and region ids; '
                        'export the project as JSON.')
    reader = _Reader(ctx, path)
    for n, task in enumerate(tasks):
        task_id = task.get('id') if isinstance(task, dict) else None
        where = f'task {task_id if isinstance(task_id, (int, str)) and len(str(task_id)) < 40 else n}'
        try:
            task = _obj(task, 'the task')
            data = _obj(task.get('data'), 'data')
            annotations = _list(task.get('annotations', []), 'annotations')
            image_id = reader.locate(data.get('image'), where, data.get('mmal_id'), data.get('mmal_cycle'))
            if image_id is None:
                continue
            image = ctx.by_id[image_id]
            where = f'{where} ({image.file_name})'
            answer = _answer(annotations, where, reader)
            if answer is None:
                continue  # skipped, not labeled yet, or reported
            if image_id in reader.answers:
                reader.checks.add('an image labeled twice', where)
                continue
            groups: Dict[Any, List[Dict[str, Any]]] = {}
            for k, result in enumerate(_list(answer.get('result', []), 'result')):
                result = _obj(result, 'result[]')
                key = result.get('id') if isinstance(result.get('id'), (str, int)) else f'#{k}'
                groups.setdefault(key, []).append(result)
            boxes: List[Box] = []
            for group in groups.values():
                _region(group, image, where, reader, boxes)
            reader.answers[image_id] = boxes
        except _Bad as err:
            reader.checks.add('a malformed entry', f'{where}: {err}')
    return reader.finish()


# -- COCO --------------------------------------------------------------------------------------------------
def read_coco(coco: Any, path: str, ctx: ImportContext) -> Returned:
    """The labels of a COCO json (CVAT's *COCO 1.0* export, Label Studio's COCO export, or mmal's).

    Images are matched by file name (their path relative to the image root); categories by name. An
    image of the batch that the file does not list was not answered (Label Studio leaves skipped
    tasks out). Args and Returns as :func:`read_labelstudio`.
    """
    if not (isinstance(coco, dict) and isinstance(coco.get('images'), list)
            and isinstance(coco.get('annotations', []), list) and isinstance(coco.get('categories', []), list)):
        raise UserError(f'{path} is not a COCO json (images, annotations, categories); export the task as COCO.')
    reader = _Reader(ctx, path)
    names: Dict[Any, str] = {}
    for n, cat in enumerate(coco.get('categories', [])):
        if isinstance(cat, dict) and isinstance(cat.get('name'), str) and isinstance(cat.get('id'), (int, str)):
            names[cat['id']] = cat['name']
        else:
            reader.checks.add('a malformed entry', f'categories[{n}]: not an object with an id and a name')
    images: Dict[Any, int] = {}
    listed = set()
    for n, entry in enumerate(coco['images']):
        where = f'images[{n}]'
        try:
            entry = _obj(entry, 'the image')
            if not isinstance(entry.get('id'), (int, str)):
                raise _Bad(f'its id is {_show(entry.get("id"))}, not a number or string')
            listed.add(entry['id'])
            name = _text(entry.get('file_name'), 'its file_name')
            image_id = reader.locate(name, f'{where} ({name})')
            if image_id is None:
                continue
            image = ctx.by_id[image_id]
            if image_id in reader.answers:
                reader.checks.add('an image labeled twice', f'{where} ({name})')
                continue
            if not reader.check_size(image, entry.get('width'), entry.get('height'), f'{where} ({name})'):
                continue
            images[entry['id']] = image_id
            reader.answers[image_id] = []
        except _Bad as err:
            reader.checks.add('a malformed entry', f'{where}: {err}')
    for n, ann in enumerate(coco.get('annotations', [])):
        where = f'annotations[{n}]'
        try:
            ann = _obj(ann, 'the annotation')
            image_key = ann.get('image_id')
            if not isinstance(image_key, (int, str)) or image_key not in listed:
                raise _Bad(f'its image_id {_show(image_key)} is not one of the images listed')
            if image_key not in images:
                continue  # its image was reported, or is of an earlier cycle
            image = ctx.by_id[images[image_key]]
            where = f'{where} ({image.file_name})'
            category = ann.get('category_id')
            label = names.get(category) if isinstance(category, (int, str)) else None
            if label is None:
                reader.checks.add('an unknown class', f'{where} (category_id {_show(ann.get("category_id"))})')
                continue
            attributes = ann.get('attributes')
            rotation = _number(attributes.get('rotation', 0), 'attributes.rotation') if isinstance(attributes, dict) \
                else 0.0
            if rotation % 360.0 != 0.0:
                reader.checks.add('a rotated box', f'{where} ({rotation:g} degrees)')
                continue
            if ann.get('keypoints') and not ann.get('bbox'):
                reader.checks.add('a keypoint', where)
                continue
            segmentation = ann.get('segmentation')
            if segmentation:
                if not reader.shape('segmentation', where):
                    continue
                try:
                    bbox = coco_segmentation_bbox(segmentation, image.width, image.height)
                except (ValueError, TypeError, KeyError) as err:
                    raise _Bad(f'its segmentation cannot be read ({err})') from None
                if bbox is None:
                    reader.checks.add('a box of zero or negative size', f'{where} (an empty segmentation)')
                    continue
            else:
                values = _list(ann.get('bbox'), 'its bbox')
                if len(values) != 4:
                    raise _Bad(f'its bbox has {len(values)} numbers, not 4')
                x, y, w, h = (_number(v, 'bbox[]') for v in values)
                bbox = (x, y, x + w, y + h)
            reader.add_box(image, label, bbox, where, reader.answers[image.id])
        except _Bad as err:
            reader.checks.add('a malformed entry', f'{where}: {err}')
    return reader.finish()


def read_returned(obj: Any, path: str, ctx: ImportContext) -> Returned:
    """A returned file of either format: a list is Label Studio's JSON export, an object COCO."""
    return (read_labelstudio if isinstance(obj, list) else read_coco)(obj, path, ctx)
