"""The review of a returned batch: which labels look wrong to the model that picked the batch.

``export`` keeps that model's boxes on the batch (``cycle_<k>/predictions.json``, down to
:data:`REVIEW_THRESHOLD`); the model had not seen the batch, so its boxes are out of sample. After
``import``, :func:`review_cycle` scores every returned image and label against them
(:mod:`mmal.scoring.review`) and writes ``cycle_<k>/review.json``, ranked, most suspicious first.
``al_project.py review`` lists it and writes a review batch (:func:`write_review_batch`) where each
suspect image carries its returned labels and the model's disagreeing boxes, both as predictions,
so a second annotator fixes it; ``al_project.py import --review`` brings the fixes back
(:meth:`mmal.labeling.project.LabelingProject.record_review`).
"""
from __future__ import annotations

import os.path as osp
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from ..errors import UserError
from ..fileio import atomic_write_json
from ..schema import read_json
from ..scoring.estimate import (
    labels_as_detections,
    map_estimate,
    paired_difference,
    pool_map,
    stratum_weights,
    weighted_map,
)
from ..scoring.review import TYPES, ReviewInputs, box_iou, review
from .formats import BatchImage, Box, coco_images, labelstudio_tasks
from .project import LabelingProject

#: The least score of the model's boxes kept for the review (``export`` keeps them down to it).
REVIEW_THRESHOLD = 0.05
#: A score from which an image or a box is called suspicious in summaries.
SUSPICIOUS = 0.5


def _xyxy(box: Dict[str, Any]) -> List[float]:
    return [box['x1'], box['y1'], box['x2'], box['y2']]


def review_cycle(project: LabelingProject, cycle: int) -> Optional[Dict[str, Any]]:
    """Score the labels imported in ``cycle`` against the boxes of the model that picked them and write
    ``cycle_<k>/review.json``; None (nothing written) when that cycle kept no model boxes (no model yet).

    Returns:
        The review: ``summary`` and ``images`` ranked by their combined score.
    """
    predictions_path = project.cycle_path('predictions.json', cycle=cycle)
    returned_path = project.cycle_path('returned.json', cycle=cycle)
    if not (osp.isfile(predictions_path) and osp.isfile(returned_path)):
        return None
    kept = read_json(predictions_path, 'the project is damaged; run export again.')
    found = kept['images']
    returned = read_json(returned_path, 'the project is damaged.')['images']
    classes = project.state.classes
    index = {name: k for k, name in enumerate(classes)}
    preds = [[b for b in found.get(str(im['id']), []) if b['label'] in index] for im in returned]
    inputs = ReviewInputs.from_lists(
        [([_xyxy(b) for b in p], [b['score'] or 0.0 for b in p], [index[b['label']] for b in p]) for p in preds],
        [([_xyxy(b) for b in im['boxes']], [index[b['label']] for b in im['boxes']]) for im in returned])
    scores = review(inputs, len(classes))
    per_image = scores.image_scores()
    files = {im['id']: im['file_name'] for im in project.pool}
    images = []
    for n, im in enumerate(returned):
        iou = box_iou(inputs.pred_boxes[n], inputs.gt_boxes[n])
        labels = []
        for k, box in enumerate(im['boxes']):
            entry = dict(box=box, **{t: round(float(getattr(scores, t)[n, k]), 4) for t in TYPES[1:]})
            other = [(p['score'], p['label']) for j, p in enumerate(preds[n])
                     if p['label'] != box['label'] and iou[j, k] >= 0.5]
            if other and entry['wrong_class'] > 0:
                entry['model_class'] = max(other)[1]
            labels.append(entry)
        missing = [dict(box=p, missing=round(float(scores.missing[n, j]), 4)) for j, p in enumerate(preds[n])
                   if scores.missing[n, j] > 0]
        threshold = scores.thresholds
        disagreeing = [p for j, p in enumerate(preds[n]) if (p['score'] or 0) >= float(threshold[index[p['label']]])
                       and not any(iou[j, k] >= 0.5 and b['label'] == p['label'] for k, b in enumerate(im['boxes']))]
        combined = round(float(per_image['combined'][n]), 4)
        images.append(dict(id=im['id'], file_name=files.get(im['id']), combined=combined,
                           **{t: round(float(per_image[t][n]), 4) for t in TYPES}, labels=labels, missing_boxes=missing,
                           disagreeing=disagreeing))
    images.sort(key=lambda im: (-im['combined'], im['id']))
    summary = dict(images=len(images), suspicious_images=sum(im['combined'] >= SUSPICIOUS for im in images),
                   suspicious_labels=sum(max(lab[t] for t in TYPES[1:]) >= SUSPICIOUS
                                         for im in images for lab in im['labels']),
                   likely_missing_boxes=sum(m['missing'] >= SUSPICIOUS for im in images for m in im['missing_boxes']),
                   by_type={t: sum(im[t] >= SUSPICIOUS for im in images) for t in TYPES},
                   class_thresholds={c: round(float(t), 4) for c, t in zip(classes, scores.thresholds)})
    control = control_estimate(project, cycle, returned, inputs, len(classes), kept.get('shadows'))
    if control is not None:
        summary['control'] = control
    record = dict(cycle=cycle, model=kept['model'], summary=summary, images=images)
    atomic_write_json(project.cycle_path('review.json', cycle=cycle), record)
    return record


def control_estimate(project: LabelingProject, cycle: int, returned: List[Dict[str, Any]], inputs: ReviewInputs,
                     num_classes: int, shadows: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The picking model's mAP (IoU 0.5) on the batch's random control share (``select`` with
    ``active_learning.control_fraction``), with a 95 % bootstrap interval; on the method's picks; and,
    once every pick has come back, on the whole pool it picked from (picks and control weighted by
    their inclusion probabilities, :func:`~mmal.scoring.estimate.pool_map`); with ``shadows`` (the
    boxes of the ``gain_estimate`` shadow models on the batch, from ``predictions.json``), the gain
    of the previous batch's picks over as many random images (``gain_mAP``). None when the batch had
    no control share."""
    selected = read_json(project.cycle_path('selected.json', cycle=cycle), 'the project is damaged.')
    drawn = set(selected.get('control') or [])
    if not drawn:
        return None
    control_ids = {p['img_id'] for p in selected['selected'] if p['index'] in drawn}
    rows = [n for n, im in enumerate(returned) if im['id'] in control_ids]
    picks = [n for n, im in enumerate(returned) if im['id'] not in control_ids]
    truth = {n: labels_as_detections(inputs.gt_boxes[n][inputs.gt_valid[n]].tolist(),
                                     inputs.gt_labels[n][inputs.gt_valid[n]].tolist()) for n in rows + picks}
    boxes = {n: (inputs.pred_boxes[n][inputs.pred_valid[n]].tolist(),
                 inputs.pred_scores[n][inputs.pred_valid[n]].tolist(),
                 inputs.pred_labels[n][inputs.pred_valid[n]].tolist()) for n in rows + picks}
    estimate = map_estimate([truth[n] for n in rows], [boxes[n] for n in rows], num_classes, seed=cycle)
    picked = map_estimate([truth[n] for n in picks], [boxes[n] for n in picks], num_classes, draws=0).value
    found = dict(mAP=estimate.to_json(), active_mAP=round(picked, 4))
    if rows and len(picks) == len(selected['selected']) - len(drawn) and selected.get('control_stratum'):
        order, stratum = picks + rows, int(selected['control_stratum'])
        found['pool_mAP'] = pool_map([truth[n] for n in order], [boxes[n] for n in order], len(picks), stratum,
                                     num_classes, seed=cycle).to_json()
        if shadows:
            index = {name: k for k, name in enumerate(project.state.classes)}
            weights = stratum_weights(len(picks), len(rows), stratum)

            def statistic(name: str) -> Any:
                seen = [[b for b in shadows[name].get(str(returned[n]['id']), []) if b['label'] in index]
                        for n in order]
                return weighted_map([truth[n] for n in order], [([_xyxy(b) for b in p], [b['score'] or 0.0 for b in p],
                                                                 [index[b['label']] for b in p]) for p in seen],
                                    weights, num_classes)
            found['gain_mAP'] = paired_difference(statistic('picked'), statistic('random'), len(picks), len(rows),
                                                  seed=cycle).to_json()
    return found


def summary_lines(record: Dict[str, Any], root: str, top: int = 5) -> List[str]:
    """A few lines for the terminal: how much looks suspicious, and the worst images with why
    (``root``: the project folder, for the command that lists them all)."""
    s = record['summary']
    lines = [f'review (the cycle {record["cycle"]} model, which had not seen these labels): {s["suspicious_images"]} '
             f'of {s["images"]} images look suspicious (score >= {SUSPICIOUS}): {s["suspicious_labels"]} labels, '
             f'{s["likely_missing_boxes"]} likely missing boxes; per type: '
             + ', '.join(f'{t} {n}' for t, n in s['by_type'].items())]
    if 'control' in s:
        c = s['control']['mAP']
        lines.append(f'the cycle {record["cycle"]} model on the random control share ({c["n"]} images): mAP '
                     f'{c["value"]:.3f} (95 % {c["low"]:.3f}-{c["high"]:.3f}), an estimate of its mAP on the images '
                     f'the method left; on the method\'s own picks {s["control"]["active_mAP"]:.3f}')
        if 'pool_mAP' in s['control']:
            p = s['control']['pool_mAP']
            lines.append(f'its mAP on the whole pool it picked from, picks and control weighted by how likely each was '
                         f'to be labeled: {p["value"]:.3f} (95 % {p["low"]:.3f}-{p["high"]:.3f})')
        if 'gain_mAP' in s['control']:
            g = s['control']['gain_mAP']
            lines.append(f'the last batch\'s picks beat as many random images by {g["value"]:+.3f} mAP on the pool '
                         f'(95 % {g["low"]:+.3f} to {g["high"]:+.3f}; shadow models, scored on this batch)')
    for im in record['images'][:top]:
        if im['combined'] < SUSPICIOUS:
            break
        worst = max(TYPES, key=lambda t: im[t])
        lines.append(f'  {im["combined"]:.2f} {im["file_name"]} (id {im["id"]}): {worst.replace("_", " ")} '
                     f'{im[worst]:.2f}')
    if s['suspicious_images']:
        lines.append(f'  all of them, ranked, and a review batch for a second look: al_project.py review {root}')
    return lines


def reviewed(project: LabelingProject, cycle: Optional[int] = None) -> Dict[str, Any]:
    """The review of ``cycle`` (default: the last imported one), written when it was imported.

    Raises:
        UserError: No cycle was imported yet, or that cycle has no review (no model picked its batch).
    """
    cycle = project.state.cycle - 1 if cycle is None else cycle
    if cycle < 0:
        raise UserError('no batch was imported yet; review looks at labels that came back (after import).')
    path = project.cycle_path('review.json', cycle=cycle)
    if not osp.isfile(path):
        record = review_cycle(project, cycle)
        if record is None:
            raise UserError(f'cycle {cycle} has no review: its batch was picked without a model (nothing was '
                            'labeled yet), so no model saw it before the labels came back; review a later cycle.')
        return record
    return read_json(path, 'the project is damaged; delete it to review again.')


def write_review_batch(project: LabelingProject, record: Dict[str, Any], min_score: float, url_prefix: str,
                       top: Optional[int] = None) -> Dict[str, Any]:
    """The review batch of a cycle: its images scoring at least ``min_score`` (at most ``top``), each
    with its returned labels and the model's disagreeing boxes as Label Studio predictions, and as
    COCO (``coco_labels.json``, ``coco_model_boxes.json``), in ``cycle_<k>/review/``.

    Returns:
        ``ids`` (the images sent) and the ``files`` written.
    """
    if top is not None and top < 1:
        raise UserError(f'--top must be at least 1, got {top}.')
    chosen = [im for im in record['images'] if im['combined'] >= min_score][:top]
    if not chosen:
        raise UserError(f'no image of cycle {record["cycle"]} scores at least {min_score}; lower --min-score to '
                        'send more.')
    by_id = {im['id']: im for im in project.pool}
    cycle, classes = record['cycle'], project.state.classes

    def batch(boxes_of) -> List[BatchImage]:
        return [BatchImage(id=im['id'], file_name=by_id[im['id']]['file_name'], width=by_id[im['id']]['width'],
                           height=by_id[im['id']]['height'], score=im['combined'],
                           boxes=[Box(**b) for b in boxes_of(im)]) for im in chosen]

    labels = batch(lambda im: [lab['box'] for lab in im['labels']])
    model = batch(lambda im: im['disagreeing'])
    tasks = labelstudio_tasks(labels, url_prefix, cycle)
    for task, theirs in zip(tasks, labelstudio_tasks(model, url_prefix, cycle)):
        task['data']['mmal_review'] = True
        task['predictions'][0]['model_version'] = f'returned labels, cycle {cycle}'
        task['predictions'].append(dict(theirs['predictions'][0], model_version=f'mmal cycle {cycle} review'))
    folder = project.cycle_path('review', cycle=cycle)
    files = dict(labelstudio_tasks=osp.join(folder, 'labelstudio_tasks.json'),
                 coco_labels=osp.join(folder, 'coco_labels.json'),
                 coco_model_boxes=osp.join(folder, 'coco_model_boxes.json'), batch=osp.join(folder, 'batch.json'))
    atomic_write_json(files['labelstudio_tasks'], tasks)
    atomic_write_json(files['coco_labels'], coco_images(labels, classes, with_boxes=True))
    atomic_write_json(files['coco_model_boxes'], coco_images(model, classes, with_boxes=True))
    atomic_write_json(files['batch'], dict(cycle=cycle, ids=[im['id'] for im in chosen],
                                           labels={str(b.id): [asdict(x) for x in b.boxes] for b in labels}))
    return dict(ids=[im['id'] for im in chosen], files=files)


def ranked_rows(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per image for a CSV: rank, id, file, the combined and per-type scores, label count."""
    return [dict(rank=r, id=im['id'], file_name=im['file_name'], combined=im['combined'],
                 **{t: im[t] for t in TYPES}, labels=len(im['labels']))
            for r, im in enumerate(record['images'], 1)]
