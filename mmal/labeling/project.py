"""A labeling project on disk: active learning on images nobody has labeled yet.

::

    <project>/project.json              config, image root, classes, the cycle and its step (ProjectState)
    <project>/pool.json                 every pool image: id, file (relative to the image root), width, height
    <project>/labeled.json              the labeled set as COCO; each image records the cycle it was labeled in
    <project>/cycle_<k>/labeled.json    the labeled set cycle k trained on (the previous version, kept)
    <project>/cycle_<k>/model.pth       the model trained in cycle k (mmengine's files in cycle_<k>/train/)
    <project>/cycle_<k>/selected.json   the batch it picked (the driver's Selection record)
    <project>/cycle_<k>/export/         labelstudio_tasks.json, labeling_config.xml, coco_images.json,
                                        coco_preannotations.json
    <project>/cycle_<k>/returned.json   what came back, as imported (image ids and boxes, the file's sha256)
    <project>/.lock                     held by the command changing the project (:mod:`.lock`)

A cycle's steps run in order, each a command: ``train`` -> ``select`` -> ``export`` (or ``push``) ->
(annotators) -> ``import`` (or ``pull``) -> the next cycle. A step may be run again (it redoes itself),
but not out of order: selecting while a batch is out for labeling, or importing before exporting,
is one sentence; importing a file again says it was imported. Every file is written atomically;
``project.json`` is written last, so an interrupted step is redone. Image sizes in ``pool.json`` are
the sizes mmcv loads (EXIF orientation applied), the frame boxes are drawn, stored and trained in.
"""
from __future__ import annotations

import copy
import hashlib
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UserError
from ..fileio import IMAGE_EXTENSIONS, atomic_write_json, atomic_write_text, check_output_folder, list_images
from ..records import Selection
from ..schema import coco_images as listed_images
from ..schema import read_json
from .formats import BatchImage, Box, Labeled, coco_images, count_boxes, labeling_config, labelstudio_tasks
from .readers import ImportContext, Returned, read_coco, read_returned

#: The steps of a cycle, in order; ``step`` in project.json is the next one to run.
STEPS = ('train', 'select', 'export', 'import')
PROJECT_FILE = 'project.json'


@dataclass
class ProjectState:
    """``project.json``.

    Attributes:
        config: The mmdet config (absolute path) the models are trained with.
        image_root: The folder the image files are relative to.
        classes: The class names, in the order of the model's labels.
        cycle: The current cycle.
        step: The next step of the cycle (one of :data:`STEPS`).
        out: Pool ids of the batch out for labeling (after ``export``).
        labelstudio: The Label Studio server and project ``push`` uses (``url``, ``project``), once pushed.
    """

    config: str
    image_root: str
    classes: List[str]
    cycle: int = 0
    step: str = 'train'
    out: List[int] = field(default_factory=list)
    labelstudio: Dict[str, Any] = field(default_factory=dict)
    version: int = 2

#: EXIF orientations that turn an image by 90 or 270 degrees (width and height swap when loaded).
_TURNED = (5, 6, 7, 8)


def image_size(path: str) -> tuple:
    """``(width, height)`` of an image as mmcv loads it and labeling tools show it: from its header,
    turned by its EXIF orientation.

    Raises:
        UserError: The file is not an image that can be read.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            turned = img.getexif().get(0x0112) in _TURNED
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f'{path} is not a readable image ({type(err).__name__}: {err}); remove it from the image '
                        'folder or fix it.') from None
    return (height, width) if turned else (width, height)


def file_digest(path: str) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class LabelingProject:
    """The project folder (see the module docstring).

    Args:
        root: The project folder.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        path = osp.join(root, PROJECT_FILE)
        obj = read_json(path, 'start a project there with `al_project.py init`.')
        try:
            self.state = ProjectState(**obj)
        except TypeError as err:
            raise UserError(f'{path} is not an mmal project file ({err}); restore it or start a new project.') from None
        if self.state.step not in STEPS:
            raise UserError(f'{path}: step {self.state.step!r} is not one of {STEPS}; restore the file.')
        self.pool: List[Dict[str, Any]] = read_json(osp.join(root, 'pool.json'), 'the project is damaged.')['images']

    # -- files ------------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return osp.join(self.root, *parts)

    def cycle_path(self, *parts: str, cycle: Optional[int] = None) -> str:
        return self.path(f'cycle_{self.state.cycle if cycle is None else cycle}', *parts)

    def save(self) -> None:
        """Write ``project.json`` (the commit point of every step)."""
        atomic_write_json(self.path(PROJECT_FILE), asdict(self.state))

    def labeled(self) -> Dict[str, Any]:
        """The labeled set (COCO)."""
        return read_json(self.path('labeled.json'), 'the project is damaged.')

    def image_file(self, image: Dict[str, Any]) -> str:
        return osp.join(self.state.image_root, image['file_name'])

    # -- the order of the steps -----------------------------------------------------------------------
    def expect(self, command: str, allowed: Sequence[str]) -> None:
        """Refuse ``command`` unless the project's next step is one of ``allowed``.

        Raises:
            UserError: One sentence naming what to run instead.
        """
        step = self.state.step
        if step in allowed:
            return
        if step == 'import':
            reason = (f'a batch of {len(self.state.out)} images is out for labeling (cycle {self.state.cycle}); '
                      f'import the labels first with `al_project.py import {self.root} FILE`')
        else:
            reason = f'the next step of cycle {self.state.cycle} is `al_project.py {step} {self.root}`'
        raise UserError(f'cannot {command} now: {reason}.')

    # -- status -----------------------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        """The project at a glance: where it stands, what is labeled (images that came back without a
        box counted apart), what is out, what the last import held and what its review found, and with a
        stopping rule, the agreements of successive models and whether it fires."""
        labeled = self.labeled()
        with_boxes = {a['image_id'] for a in labeled['annotations']}
        status = dict(project=self.root, cycle=self.state.cycle, next_step=self.state.step,
                      pool_images=len(self.pool), labeled_images=len(labeled['images']),
                      labeled_boxes=len(labeled['annotations']),
                      labeled_without_boxes=sum(im['id'] not in with_boxes for im in labeled['images']),
                      out_for_labeling=len(self.state.out), classes=self.state.classes)
        last = self.path(f'cycle_{self.state.cycle - 1}', 'returned.json')
        if self.state.cycle > 0 and osp.isfile(last):
            status['last_import'] = read_json(last, 'the project is damaged.').get('summary', {})
        review = self.path(f'cycle_{self.state.cycle - 1}', 'review.json')
        if self.state.cycle > 0 and osp.isfile(review):
            status['last_review'] = read_json(review, 'the project is damaged.').get('summary', {})
        stop = next((p for p in (self.path(f'cycle_{k}', 'stop.json') for k in range(self.state.cycle, -1, -1))
                     if osp.isfile(p)), None)
        if stop is not None:
            signal = read_json(stop, 'the project is damaged.')
            status['stopping_rule'] = {k: signal[k] for k in ('cycle', 'agreements', 'threshold', 'window', 'fires')}
        if self.state.labelstudio:
            status['labelstudio'] = self.state.labelstudio
        return status

    # -- the pool ---------------------------------------------------------------------------------------
    def unlabeled_ids(self) -> List[int]:
        taken = {im['id'] for im in self.labeled()['images']}
        return [im['id'] for im in self.pool if im['id'] not in taken]

    def batch(self, selection: Selection, boxes: Optional[Dict[int, List[Box]]] = None) -> List[BatchImage]:
        """The batch a selection picked, with the model's boxes where given."""
        by_id = {im['id']: im for im in self.pool}
        out = []
        for pick in selection.selected:
            image = by_id[int(pick.img_id)]
            out.append(BatchImage(id=image['id'], file_name=image['file_name'], width=image['width'],
                                  height=image['height'], score=pick.score, boxes=(boxes or {}).get(image['id'], [])))
        return out

    # -- export and import ------------------------------------------------------------------------------
    def write_export(self, batch: Sequence[BatchImage], url_prefix: str) -> Dict[str, str]:
        """Write the batch for the labeling tools into ``cycle_<k>/export/``; returns the files."""
        folder = self.cycle_path('export')
        files = dict(labelstudio_tasks=osp.join(folder, 'labelstudio_tasks.json'),
                     labeling_config=osp.join(folder, 'labeling_config.xml'),
                     coco_images=osp.join(folder, 'coco_images.json'),
                     coco_preannotations=osp.join(folder, 'coco_preannotations.json'))
        classes = self.state.classes
        atomic_write_json(files['labelstudio_tasks'],
                          labelstudio_tasks(batch, url_prefix, self.state.cycle))
        atomic_write_text(files['labeling_config'], labeling_config(classes))
        atomic_write_json(files['coco_images'], coco_images(batch, classes, with_boxes=False))
        atomic_write_json(files['coco_preannotations'], coco_images(batch, classes, with_boxes=True))
        return files

    def expect_import(self, path: str) -> None:
        """Refuse an import out of order: before the batch was exported, or of a file already imported
        (recognised by its bytes), in one sentence naming what is next.

        Raises:
            UserError: The project is not waiting for labels.
        """
        if self.state.step == 'import':
            return
        previous = self.path(f'cycle_{self.state.cycle - 1}', 'returned.json')
        if self.state.cycle > 0 and osp.isfile(path) and osp.isfile(previous):
            record = read_json(previous, 'the project is damaged.')
            if record.get('source_sha256') == file_digest(path):
                raise UserError(f'{path} was already imported (cycle {self.state.cycle - 1}: '
                                f'{len(record.get("images", []))} images); next: `al_project.py {self.state.step} '
                                f'{self.root}`.')
        self.expect('import', ('import',))

    def import_context(self, skipped_to_pool: bool = False, convert: Sequence[str] = (),
                       several: str = 'refuse') -> ImportContext:
        """What a returned file of the batch out is checked against (see :mod:`.readers`)."""
        out = set(self.state.out)
        earlier = frozenset(im['id'] for im in self.labeled()['images'])
        return ImportContext(batch=[b for b in self.batch(self.selection()) if b.id in out],
                             pool=[(im['id'], im['file_name']) for im in self.pool], earlier_ids=earlier,
                             cycle=self.state.cycle, classes=self.state.classes, skipped_to_pool=skipped_to_pool,
                             convert=frozenset(convert), several=several)

    def read_returned(self, path: str, ctx: ImportContext) -> Returned:
        """The labels in a file that came back (Label Studio JSON or COCO), checked against the batch out.

        Raises:
            UserError: A file mmal wrote itself for the annotators (not their labels), or as the readers.
        """
        obj = read_json(path, 'pass the file the labeling tool exported.')
        folder = self.cycle_path('export')
        digest = file_digest(path)
        for name in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
            if file_digest(osp.join(folder, name)) == digest:
                raise UserError(f'{path} is {name}, which mmal wrote for the annotators, not their labels; import the '
                                'file the labeling tool exported after labeling.')
        return read_returned(obj, path, ctx)

    def selection(self) -> Selection:
        """The batch the current cycle selected (``cycle_<k>/selected.json``)."""
        path = self.cycle_path('selected.json')
        return Selection.from_json(read_json(path, 'the project is damaged.'), path)

    def snapshot_labeled(self) -> str:
        """Keep the labeled set the current cycle starts from (``cycle_<k>/labeled.json``, written
        once); returns its path."""
        path = self.cycle_path('labeled.json')
        if not osp.isfile(path):
            atomic_write_json(path, self.labeled())
        return path

    def merge(self, labeled_images: List[Labeled]) -> Dict[str, Any]:
        """The labeled set with ``labeled_images`` added (recorded with this cycle), built from the
        version the cycle started from, so that redoing an interrupted import adds nothing twice."""
        merged = copy.deepcopy(read_json(self.cycle_path('labeled.json'), 'the project is damaged.'))
        add_labels(merged, labeled_images, self.pool, self.state.cycle)
        return merged

    def record_import(self, returned: Returned, source: str) -> Dict[str, Any]:
        """Merge the returned labels atomically and move on to the next cycle's training.

        Args:
            returned: The checked labels.
            source: What they were read from (a file, or a Label Studio project), recorded with its
                sha256 when it is a file.

        Returns:
            The import's summary (also kept in ``returned.json`` and shown by ``status``).
        """
        merged = self.merge(returned.labeled)
        summary = dict(images=len(returned.labeled), boxes=count_boxes(returned.labeled),
                       images_without_boxes=returned.empty, skipped=len(returned.skipped),
                       earlier_cycles_ignored=returned.earlier, converted_to_boxes=returned.converted,
                       other_results_ignored=returned.ignored)
        atomic_write_json(self.cycle_path('returned.json'), dict(
            cycle=self.state.cycle, source=source,
            source_sha256=file_digest(source) if osp.isfile(source) else None, summary=summary,
            skipped=returned.skipped,
            images=[dict(id=i.id, boxes=[asdict(b) for b in i.boxes]) for i in returned.labeled]))
        atomic_write_json(self.path('labeled.json'), merged)
        self.state.cycle += 1
        self.state.step, self.state.out = 'train', []
        self.save()
        return summary

    def read_review_fixes(self, path: str, cycle: int, convert: Sequence[str] = (),
                          several: str = 'refuse') -> Returned:
        """The labels of a review batch of ``cycle`` (``al_project.py review``) that came back, checked as
        any returned labels against the images sent for review (images not returned keep their labels).

        Raises:
            UserError: The cycle sent no review batch, the file is one mmal wrote, or as the readers.
        """
        batch_path = self.cycle_path('review', 'batch.json', cycle=cycle)
        if not osp.isfile(batch_path):
            raise UserError(f'cycle {cycle} sent no review batch; write one with `al_project.py review {self.root}`, '
                            'have it fixed, then import the fixes with --review.')
        sent = read_json(batch_path, 'the project is damaged; run review again.')
        digest = file_digest(path)
        folder = self.cycle_path('review', cycle=cycle)
        for name in sorted(os.listdir(folder)):
            if file_digest(osp.join(folder, name)) == digest:
                raise UserError(f'{path} is {name}, which mmal wrote for the reviewers, not their labels; import the '
                                'file the labeling tool exported after the review.')
        by_id = {im['id']: im for im in self.pool}
        batch = [BatchImage(id=i, file_name=by_id[i]['file_name'], width=by_id[i]['width'], height=by_id[i]['height'])
                 for i in sent['ids']]
        ctx = ImportContext(batch=batch, pool=[(im['id'], im['file_name']) for im in self.pool],
                            earlier_ids=frozenset(), cycle=cycle, classes=self.state.classes, skipped_to_pool=True,
                            convert=frozenset(convert), several=several)
        return read_returned(read_json(path, 'pass the file the labeling tool exported.'), path, ctx)

    def record_review(self, returned: Returned, cycle: int, source: str) -> Dict[str, Any]:
        """Replace the labels of the reviewed images that came back changed, atomically, and keep which
        labels the review changed in ``cycle_<k>/reviewed.json`` (one entry per review import).

        Returns:
            ``images`` (came back), ``changed`` (of them, with other labels than before) and ``boxes_before`` /
            ``boxes_after`` of the changed ones.
        """
        labeled = self.labeled()
        category = {c['id']: c['name'] for c in labeled['categories']}

        def boxes_of(image_id: int) -> List[List[Any]]:
            return sorted(([category[a['category_id']], *[round(v, 6) for v in a['bbox']]]
                           for a in labeled['annotations'] if a['image_id'] == image_id), key=str)

        changed: List[Dict[str, Any]] = []
        for image in returned.labeled:
            before = boxes_of(image.id)
            after = sorted(([b.label, round(b.x1, 6), round(b.y1, 6), round(b.x2 - b.x1, 6), round(b.y2 - b.y1, 6)]
                            for b in image.boxes), key=str)
            if before != after:
                changed.append(dict(id=image.id, before=before, after=after))
        ids = {c['id'] for c in changed}
        fixed = [i for i in returned.labeled if i.id in ids]
        labeled['annotations'] = [a for a in labeled['annotations'] if a['image_id'] not in ids]
        kept_images = [im for im in labeled['images'] if im['id'] not in ids]
        cycles = {im['id']: im.get('mmal_cycle') for im in labeled['images']}
        labeled['images'] = kept_images
        add_labels(labeled, fixed, self.pool, -1)
        for im in labeled['images']:
            if im['id'] in ids:
                im.update(mmal_cycle=cycles[im['id']], mmal_reviewed=self.state.cycle)
        path = self.cycle_path('reviewed.json', cycle=cycle)
        history = read_json(path, 'the project is damaged.')['imports'] if osp.isfile(path) else []
        entry = dict(source=source, source_sha256=file_digest(source) if osp.isfile(source) else None,
                     at_cycle=self.state.cycle, images=len(returned.labeled), changed=changed)
        atomic_write_json(path, dict(cycle=cycle, imports=history + [entry]))
        atomic_write_json(self.path('labeled.json'), labeled)
        return dict(images=len(returned.labeled), changed=len(changed),
                    boxes_before=sum(len(c['before']) for c in changed),
                    boxes_after=sum(len(c['after']) for c in changed))

    def set_config(self, config: str) -> str:
        """Train with another mmdet config from now on. A model of the current cycle trained with the
        old config is set aside: the step goes back to ``train`` (unless a batch is out).

        Returns:
            The next step.
        """
        if not osp.isfile(config):
            raise UserError(f'config file {config} does not exist; pass the mmdet config to train with.')
        self.state.config = osp.abspath(config)
        if self.state.step in ('select', 'export') and osp.isfile(self.cycle_path('model.pth')):
            self.state.step = 'train'
        self.save()
        return self.state.step


def create_project(root: str, images: str, config: str, classes: Optional[Sequence[str]] = None,
                   seed_labels: Optional[str] = None) -> LabelingProject:
    """Start a project in the new folder ``root``.

    Args:
        root: The project folder (must not exist, or be empty).
        images: A folder of images (subfolders included) or a COCO json listing them (its
            ``file_name`` relative to the json's folder).
        config: The mmdet config to train with.
        classes: The class names; default: the seed labels' categories.
        seed_labels: A COCO json with labels of some of the images (matched by file name).

    Raises:
        UserError: A missing input, a folder in use, classes that do not fit.
    """
    if osp.exists(root) and (not osp.isdir(root) or os.listdir(root)):
        raise UserError(f'{root} exists and is not an empty folder; choose a new project folder.')
    if not osp.isfile(config):
        raise UserError(f'config file {config} does not exist; pass the mmdet config to train with.')
    if osp.isdir(images):
        image_root = osp.abspath(images)
        pool = [dict(id=n + 1, file_name=name, **dict(zip(('width', 'height'), image_size(osp.join(image_root, name)))))
                for n, name in enumerate(list_images(image_root))]
    elif osp.isfile(images):
        image_root = osp.dirname(osp.abspath(images))
        fix = 'pass a folder of images or a COCO json.'
        listed = listed_images(read_json(images, fix), images, fix)
        pool = []
        for n, im in enumerate(listed):  # the size as loaded, whatever the json says (EXIF orientation)
            width, height = image_size(osp.join(image_root, im['file_name']))
            pool.append(dict(id=n + 1, file_name=im['file_name'], width=int(width), height=int(height)))
    else:
        raise UserError(f'{images} does not exist; pass a folder of images or a COCO json listing them.')
    if not pool:
        raise UserError(f'{images} holds no images ({", ".join(IMAGE_EXTENSIONS)}); point it at your images.')
    seed = read_json(seed_labels, 'pass a COCO json of labeled images.') if seed_labels else None
    names = list(classes or [])
    if not names and seed:
        names = [c['name'] for c in sorted(seed.get('categories', []), key=lambda c: c['id'])]
    if not names:
        raise UserError('the project needs its class names: pass --classes (or seed labels with categories).')
    labeled = dict(images=[], annotations=[], categories=[dict(id=k + 1, name=c) for k, c in enumerate(names)])
    if seed:
        labeled = _seed(seed, seed_labels or '', pool, names, labeled)
    state = ProjectState(config=osp.abspath(config), image_root=image_root, classes=names,
                         step='train' if labeled['images'] else 'select')
    check_output_folder(root, 'the project')
    os.makedirs(root, exist_ok=True)
    atomic_write_json(osp.join(root, 'pool.json'), dict(images=pool))
    atomic_write_json(osp.join(root, 'labeled.json'), labeled)
    atomic_write_json(osp.join(root, PROJECT_FILE), asdict(state))
    return LabelingProject(root)


def add_labels(labeled: Dict[str, Any], images: List[Labeled], pool: List[Dict[str, Any]], cycle: int) -> None:
    """Add labeled images (recorded with ``cycle``; -1 for seed labels) and their boxes to a labeled
    set (COCO, categories by name), keeping its images in pool order so that every training sees its
    images in one order."""
    by_id = {im['id']: im for im in pool}
    category = {c['name']: c['id'] for c in labeled['categories']}
    next_ann = max((a['id'] for a in labeled['annotations']), default=0) + 1
    for image in images:
        pool_image = by_id[image.id]
        labeled['images'].append(dict(id=image.id, file_name=pool_image['file_name'], width=pool_image['width'],
                                      height=pool_image['height'], mmal_cycle=cycle))
        for box in image.boxes:
            w, h = box.x2 - box.x1, box.y2 - box.y1
            labeled['annotations'].append(dict(id=next_ann, image_id=image.id, category_id=category[box.label],
                                               bbox=[box.x1, box.y1, w, h], area=w * h, iscrowd=0))
            next_ann += 1
    labeled['images'].sort(key=lambda im: im['id'])


def _seed(seed: Any, path: str, pool: List[Dict[str, Any]], classes: List[str],
          labeled: Dict[str, Any]) -> Dict[str, Any]:
    """The labeled set of a project from a COCO json of seed labels, checked like any returned labels."""
    batch = [BatchImage(id=im['id'], file_name=im['file_name'], width=im['width'], height=im['height'])
             for im in pool]
    ctx = ImportContext(batch=batch, pool=[(im['id'], im['file_name']) for im in pool], earlier_ids=frozenset(),
                        cycle=-1, classes=classes, skipped_to_pool=True)
    images = read_coco(seed, path, ctx).labeled
    if not images:
        raise UserError(f'{path} labels none of the pool\'s images (matched by file name); pass labels of these '
                        'images.')
    add_labels(labeled, images, pool, -1)
    return labeled
