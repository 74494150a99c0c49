"""What goes to annotators and what comes back: Label Studio tasks and exports, COCO for CVAT. Pure Python.

A batch is a list of :class:`BatchImage` (the pool image id, its file relative to the image root,
its size, its acquisition score and the model's current boxes). Export writes:

- Label Studio: tasks (``data.image`` is the image's URL, ``data.mmal_id`` its pool id) with the
  model's boxes as ``predictions`` (pre-annotations; the prediction ``score`` is the acquisition
  score, so the Data Manager sorts by it), and the labeling config (``RectangleLabels``);
- COCO: the images alone (what CVAT imports as a task), and the same with the pre-annotations.

Import reads Label Studio's JSON export or a COCO json (CVAT's or Label Studio's) and returns one
:class:`Labeled` per image, after checking everything: unknown class names, boxes outside the image
or of zero size, rotated boxes, images not in the batch, an image labeled twice, images without an
answer (skipped). "No objects" is an answer: the image is labeled empty.
"""
from __future__ import annotations

import math
import os.path as osp
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

from ..errors import UserError

#: ``from_name`` / ``to_name`` of mmal's labeling config.
LABEL_NAME, IMAGE_NAME = 'label', 'image'
#: Boxes may overshoot the image by this much (pixels) from rounding in the tools; they are clipped.
EDGE_TOLERANCE = 0.5


@dataclass
class Box:
    """A box in pixels of the original image, ``x1 y1 x2 y2``, with its class and (predicted) score."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: Optional[float] = None


@dataclass
class BatchImage:
    """One image of a batch sent for labeling.

    Attributes:
        id: The image's id in the project's pool.
        file_name: Its file, relative to the project's image root.
        width: Width in pixels.
        height: Height in pixels.
        score: Its acquisition score (None for a method without one).
        boxes: The model's boxes above the pre-annotation threshold.
    """

    id: int
    file_name: str
    width: int
    height: int
    score: Optional[float] = None
    boxes: List[Box] = field(default_factory=list)


@dataclass
class Labeled:
    """An image as the annotators returned it: its pool id and its boxes (possibly none)."""

    id: int
    boxes: List[Box]


# -- export ----------------------------------------------------------------------------------------
def labeling_config(classes: Sequence[str]) -> str:
    """The Label Studio labeling config for boxes of ``classes``."""
    labels = '\n'.join(f'    <Label value={quoteattr(c)}/>' for c in classes)
    return (f'<View>\n  <Image name="{IMAGE_NAME}" value="$image"/>\n'
            f'  <RectangleLabels name="{LABEL_NAME}" toName="{IMAGE_NAME}">\n{labels}\n  </RectangleLabels>\n</View>\n')


def image_url(file_name: str, url_prefix: str) -> str:
    """The URL Label Studio opens for an image: ``url_prefix`` + its relative path, URL-quoted
    (``/data/local-files/?d=`` serves files under ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``)."""
    return url_prefix + urllib.parse.quote(file_name)


def _ls_region(box: Box, width: int, height: int, index: int) -> Dict[str, Any]:
    region = dict(id=f'mmal{index}', from_name=LABEL_NAME, to_name=IMAGE_NAME, type='rectanglelabels',
                  original_width=width, original_height=height, image_rotation=0,
                  value=dict(x=100.0 * box.x1 / width, y=100.0 * box.y1 / height,
                             width=100.0 * (box.x2 - box.x1) / width, height=100.0 * (box.y2 - box.y1) / height,
                             rotation=0, rectanglelabels=[box.label]))
    if box.score is not None:
        region['score'] = box.score
    return region


def labelstudio_tasks(batch: Sequence[BatchImage], url_prefix: str, model_version: str) -> List[Dict[str, Any]]:
    """Label Studio tasks of a batch, the model's boxes as ``predictions``.

    Args:
        batch: The images.
        url_prefix: Prefix of each image's URL (see :func:`image_url`).
        model_version: Names the model in Label Studio (e.g. ``'mmal cycle 2'``).
    """
    tasks = []
    for image in batch:
        task: Dict[str, Any] = dict(data=dict(image=image_url(image.file_name, url_prefix), mmal_id=image.id,
                                              mmal_file=image.file_name))
        task['predictions'] = [dict(model_version=model_version,
                                    score=0.0 if image.score is None or not math.isfinite(image.score) else image.score,
                                    result=[_ls_region(b, image.width, image.height, i)
                                            for i, b in enumerate(image.boxes)])]
        tasks.append(task)
    return tasks


def coco_images(batch: Sequence[BatchImage], classes: Sequence[str], with_boxes: bool) -> Dict[str, Any]:
    """A COCO json of the batch's images (ids are the pool ids), with the model's boxes when
    ``with_boxes`` (each with its ``score``)."""
    annotations: List[Dict[str, Any]] = []
    if with_boxes:
        for image in batch:
            for box in image.boxes:
                w, h = box.x2 - box.x1, box.y2 - box.y1
                annotations.append(dict(id=len(annotations) + 1, image_id=image.id,
                                        category_id=classes.index(box.label) + 1, bbox=[box.x1, box.y1, w, h],
                                        area=w * h, iscrowd=0, score=box.score))
    return dict(images=[dict(id=i.id, file_name=i.file_name, width=i.width, height=i.height) for i in batch],
                annotations=annotations,
                categories=[dict(id=k + 1, name=c) for k, c in enumerate(classes)])


# -- import ----------------------------------------------------------------------------------------
class _Checks:
    """Collects what is wrong with a returned file, to report the first offence and the count."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: Dict[str, List[str]] = {}

    def add(self, kind: str, where: str) -> None:
        self.found.setdefault(kind, []).append(where)

    def raise_first(self, fixes: Dict[str, str]) -> None:
        for kind, places in self.found.items():
            more = f' (and {len(places) - 1} more)' if len(places) > 1 else ''
            raise UserError(f'{self.path}: {kind} at {places[0]}{more}; {fixes[kind]}')


FIXES = {
    'an unknown class': 'label with the project\'s classes only (see its labeling config).',
    'a box outside the image': 'correct the box in the labeling tool and export again.',
    'a box of zero or negative size': 'correct or delete the box in the labeling tool and export again.',
    'a rotated box': 'mmal trains axis-aligned boxes; draw the box without rotation.',
    'an image that is not in the batch': 'import the export of this batch\'s labeling task only.',
    'an image labeled twice': 'keep one answer per image (delete the other annotation) and export again.',
    'an image without an answer (skipped)': 'label it, or pass --skipped pool to return such images to the '
                                            'unlabeled pool.',
    'a malformed entry': 'export again from the labeling tool (Label Studio: JSON; CVAT: COCO 1.0).',
}


def _check_box(box: Box, width: float, height: float, classes: Sequence[str], where: str, checks: _Checks) -> bool:
    if box.label not in classes:
        checks.add('an unknown class', f'{where} ({box.label!r})')
        return False
    if not box.x2 > box.x1 or not box.y2 > box.y1:
        checks.add('a box of zero or negative size', where)
        return False
    if (box.x1 < -EDGE_TOLERANCE or box.y1 < -EDGE_TOLERANCE or box.x2 > width + EDGE_TOLERANCE
            or box.y2 > height + EDGE_TOLERANCE):
        checks.add('a box outside the image', f'{where} ({box.x1:.1f}, {box.y1:.1f}, {box.x2:.1f}, {box.y2:.1f} in '
                                                f'{width:g}x{height:g})')
        return False
    box.x1, box.y1 = max(box.x1, 0.0), max(box.y1, 0.0)
    box.x2, box.y2 = min(box.x2, float(width)), min(box.y2, float(height))
    return True


def _finish(answers: Dict[int, List[Box]], batch: Dict[int, BatchImage], checks: _Checks,
            skipped_to_pool: bool) -> Tuple[List[Labeled], List[int]]:
    missing = [i for i in batch if i not in answers]
    if missing and not skipped_to_pool:
        for i in missing:
            checks.add('an image without an answer (skipped)', batch[i].file_name)
    checks.raise_first(FIXES)
    return [Labeled(id=i, boxes=answers[i]) for i in batch if i in answers], missing


def _match(key: str, by_file: Dict[str, int]) -> Optional[int]:
    """The batch image a file name or URL names: its relative path, a URL ending in it (Label Studio's
    ``?d=`` local files, an upload prefix), or a unique base name (CVAT keeps base names)."""
    text = urllib.parse.unquote(key)
    if '?d=' in text:
        text = text.split('?d=', 1)[1]
    text = text.lstrip('/')
    if text in by_file:
        return by_file[text]
    for name, image_id in by_file.items():
        if text.endswith('/' + name):
            return image_id
    base = osp.basename(text)
    hits = [i for name, i in by_file.items() if osp.basename(name) == base]
    return hits[0] if len(hits) == 1 else None


def read_labelstudio(tasks: Any, path: str, batch: Sequence[BatchImage], classes: Sequence[str],
                     skipped_to_pool: bool = False) -> Tuple[List[Labeled], List[int]]:
    """The labels of a Label Studio JSON export.

    Each task's answer is its one annotation that was not cancelled; a task with none was skipped.

    Args:
        tasks: The parsed export (a list of tasks).
        path: The file, for messages.
        batch: The batch sent out.
        classes: The project's classes.
        skipped_to_pool: Return skipped images to the pool instead of refusing the file.

    Returns:
        ``(labeled images, ids of skipped images)``.

    Raises:
        UserError: The first problem found, with how many there are of its kind.
    """
    if not isinstance(tasks, list):
        raise UserError(f'{path} is not a Label Studio JSON export (a list of tasks); export the project as JSON.')
    checks = _Checks(path)
    by_id = {i.id: i for i in batch}
    by_file = {i.file_name: i.id for i in batch}
    answers: Dict[int, List[Box]] = {}
    for n, task in enumerate(tasks):
        where = f'task {task.get("id", n) if isinstance(task, dict) else n}'
        data = task.get('data') if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(task.get('annotations', []), list):
            checks.add('a malformed entry', where)
            continue
        image_id = data.get('mmal_id') if data.get('mmal_id') in by_id else _match(str(data.get('image', '')), by_file)
        if image_id is None:
            checks.add('an image that is not in the batch', f'{where} ({data.get("image")})')
            continue
        done = [a for a in task.get('annotations', []) if isinstance(a, dict) and not a.get('was_cancelled')]
        if not done:
            continue  # skipped, or not labeled yet
        if len(done) > 1 or image_id in answers:
            checks.add('an image labeled twice', f'{where} ({by_id[image_id].file_name})')
            continue
        image = by_id[image_id]
        boxes = []
        for region in done[0].get('result') or []:
            value = region.get('value') if isinstance(region, dict) else None
            if region.get('type') != 'rectanglelabels' or not isinstance(value, dict):
                continue  # not a box (a comment, a choice): not ours to read
            names = value.get('rectanglelabels') or []
            try:
                x, y, w, h = (float(value[k]) for k in ('x', 'y', 'width', 'height'))
            except (KeyError, TypeError, ValueError):
                checks.add('a malformed entry', where)
                continue
            if float(value.get('rotation') or 0.0) != 0.0:
                checks.add('a rotated box', where)
                continue
            width = float(region.get('original_width') or image.width)
            height = float(region.get('original_height') or image.height)
            box = Box(label=str(names[0]) if len(names) == 1 else repr(names), x1=x * width / 100,
                      y1=y * height / 100, x2=(x + w) * width / 100, y2=(y + h) * height / 100)
            if _check_box(box, image.width, image.height, classes, f'{where} ({image.file_name})', checks):
                boxes.append(box)
        answers[image_id] = boxes
    return _finish(answers, by_id, checks, skipped_to_pool)


def read_coco(coco: Any, path: str, batch: Sequence[BatchImage], classes: Sequence[str],
              skipped_to_pool: bool = False) -> Tuple[List[Labeled], List[int]]:
    """The labels of a COCO json (CVAT's *COCO 1.0* export, Label Studio's COCO export, or mmal's).

    Images are matched to the batch by file name; categories by name. An image of the batch that
    the file does not list was not answered (Label Studio leaves skipped tasks out).

    Args and Returns: as :func:`read_labelstudio`.
    """
    if not (isinstance(coco, dict) and isinstance(coco.get('images'), list)
            and isinstance(coco.get('annotations', []), list) and isinstance(coco.get('categories', []), list)):
        raise UserError(f'{path} is not a COCO json (images, annotations, categories); export the task as COCO.')
    checks = _Checks(path)
    by_id = {i.id: i for i in batch}
    by_file = {i.file_name: i.id for i in batch}
    names = {c.get('id'): str(c.get('name')) for c in coco.get('categories', []) if isinstance(c, dict)}
    images: Dict[Any, int] = {}
    answers: Dict[int, List[Box]] = {}
    for n, entry in enumerate(coco['images']):
        if not isinstance(entry, dict) or 'file_name' not in entry or 'id' not in entry:
            checks.add('a malformed entry', f'images[{n}]')
            continue
        image_id = _match(str(entry['file_name']), by_file)
        if image_id is None:
            checks.add('an image that is not in the batch', f'images[{n}] ({entry["file_name"]})')
            continue
        if image_id in answers:
            checks.add('an image labeled twice', f'images[{n}] ({entry["file_name"]})')
            continue
        images[entry['id']] = image_id
        answers[image_id] = []
    listed = {e.get('id') for e in coco['images'] if isinstance(e, dict)}
    for n, ann in enumerate(coco.get('annotations', [])):
        where = f'annotations[{n}]'
        if not isinstance(ann, dict) or ann.get('image_id') not in images:
            if not (isinstance(ann, dict) and ann.get('image_id') in listed):  # else: its image was reported
                checks.add('a malformed entry', where)
            continue
        image = by_id[images[ann['image_id']]]
        try:
            x, y, w, h = (float(v) for v in ann['bbox'])
        except (KeyError, TypeError, ValueError):
            checks.add('a malformed entry', where)
            continue
        box = Box(label=names.get(ann.get('category_id'), f'category {ann.get("category_id")}'), x1=x, y1=y,
                  x2=x + w, y2=y + h)
        if _check_box(box, image.width, image.height, classes, f'{where} ({image.file_name})', checks):
            answers[image.id].append(box)
    return _finish(answers, by_id, checks, skipped_to_pool)


def count_boxes(images: Iterable[Labeled]) -> int:
    """How many boxes the images hold."""
    return sum(len(i.boxes) for i in images)


def voc_to_coco(voc_folder: str, ids: Sequence[str], classes: Sequence[str]) -> Dict[str, Any]:
    """A COCO json of PASCAL VOC annotations (``<voc_folder>/Annotations/<id>.xml``), with file names
    ``<id>.jpg`` relative to ``<voc_folder>/JPEGImages``: seed labels for a project from VOC data.

    Raises:
        UserError: A missing or malformed XML, or an object of another class (named).
    """
    import xml.etree.ElementTree as ET

    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    for n, image_id in enumerate(ids, 1):
        path = osp.join(voc_folder, 'Annotations', f'{image_id}.xml')
        try:
            root = ET.parse(path).getroot()
            width, height = int(root.findtext('size/width', '')), int(root.findtext('size/height', ''))
            objects = [(o.findtext('name', ''), [float(o.findtext(f'bndbox/{k}', '')) for k in
                                                 ('xmin', 'ymin', 'xmax', 'ymax')]) for o in root.iter('object')]
        except (OSError, ET.ParseError, ValueError) as err:
            raise UserError(f'{path} cannot be read as a VOC annotation ({type(err).__name__}: {err}); fix '
                            'it.') from None
        images.append(dict(id=n, file_name=f'{image_id}.jpg', width=width, height=height))
        for name, (x1, y1, x2, y2) in objects:
            if name not in classes:
                raise UserError(f'{path} has an object of class {name!r}, not one of {list(classes)}; pass its '
                                'classes.')
            annotations.append(dict(id=len(annotations) + 1, image_id=n, category_id=list(classes).index(name) + 1,
                                    bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    return dict(images=images, annotations=annotations, categories=[dict(id=k + 1, name=c) for k, c in
                                                                    enumerate(classes)])
