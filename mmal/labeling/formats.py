"""What goes to annotators and what comes back: Label Studio tasks and exports, COCO for CVAT. Pure Python.

A batch is a list of :class:`BatchImage` (the pool image id, its file relative to the image root,
its size, its acquisition score and the model's current boxes). Export writes:

- Label Studio: tasks (``data.image`` is the image's URL, ``data.mmal_id`` its pool id) with the
  model's boxes as ``predictions`` (pre-annotations; the prediction ``score`` is the acquisition
  score, so the Data Manager sorts by it), and the labeling config (``RectangleLabels``);
- COCO: the images alone (what CVAT imports as a task), and the same with the pre-annotations.

What comes back is read by :mod:`.readers`.
"""
from __future__ import annotations

import math
import os.path as osp
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence
from xml.sax.saxutils import quoteattr

from ..errors import UserError

#: ``from_name`` / ``to_name`` of mmal's labeling config.
LABEL_NAME, IMAGE_NAME = 'label', 'image'


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


def labelstudio_tasks(batch: Sequence[BatchImage], url_prefix: str, cycle: int) -> List[Dict[str, Any]]:
    """Label Studio tasks of a batch, the model's boxes as ``predictions``.

    Each task's data names the image's pool id and the cycle (``mmal_id``, ``mmal_cycle``), so that
    a Label Studio project reused across cycles tells this batch's tasks from earlier ones.

    Args:
        batch: The images.
        url_prefix: Prefix of each image's URL (see :func:`image_url`).
        cycle: The project's cycle (the model is named ``'mmal cycle <k>'`` in Label Studio).
    """
    model_version = f'mmal cycle {cycle}'
    tasks = []
    for image in batch:
        task: Dict[str, Any] = dict(data=dict(image=image_url(image.file_name, url_prefix), mmal_id=image.id,
                                              mmal_file=image.file_name, mmal_cycle=cycle))
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


# -- reading back ----------------------------------------------------------------------------------
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
