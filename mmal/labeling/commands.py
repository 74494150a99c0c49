"""The steps of a labeling project that run a model: train, select, export (see :mod:`.project`)."""
from __future__ import annotations

import copy
import os.path as osp
import shutil
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from mmengine.config import Config
from mmengine.dist import barrier, get_rank
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from .. import dist
from ..active.stopping import StopRule
from ..checkpoint import build_model
from ..cli import load_config
from ..datasets.image_pool import ImagePoolDataset
from ..engine.acquisition import AcquisitionSpec, acquire, check_control_fraction, check_gain_estimate, predict_boxes
from ..engine.features import build_features
from ..engine.hooks import scoring_pipeline, with_hooks
from ..engine.method import method_from_flags
from ..engine.training import train_and_save
from ..errors import UserError
from ..fileio import atomic_write_json
from ..outputs import FEATURES
from ..records import Selection
from ..schema import read_json
from ..scoring.agreement import detection_agreement
from .formats import Box
from .project import LabelingProject
from .review import REVIEW_THRESHOLD


def leaf_dataset(dataset_cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The innermost dataset of a (wrapped) dataset config: the one with the pipeline."""
    while 'dataset' in dataset_cfg or 'datasets' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset'] if 'dataset' in dataset_cfg else dataset_cfg['datasets'][0]
    return dataset_cfg


def _num_classes(model_cfg: Dict[str, Any]) -> Optional[int]:
    for head in (model_cfg.get('bbox_head'), (model_cfg.get('roi_head') or {}).get('bbox_head')):
        if isinstance(head, dict) and isinstance(head.get('num_classes'), int):
            return head['num_classes']
        if isinstance(head, list) and head and isinstance(head[-1].get('num_classes'), int):
            return head[-1]['num_classes']
    return None


def project_config(project: LabelingProject, options: Optional[dict] = None, path: Optional[str] = None) -> Config:
    """The project's mmdet config (or the one at ``path``), merged with ``options`` (``--cfg-options``),
    checked to have one output per class.

    Raises:
        UserError: The config cannot be read, or its model predicts another number of classes.
    """
    path = path or project.state.config
    cfg = load_config(path, options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    found = _num_classes(cfg.model)
    if found is not None and found != len(project.state.classes):
        raise UserError(f'{path} predicts {found} classes but the project has '
                        f'{len(project.state.classes)} ({", ".join(project.state.classes)}); set num_classes='
                        f'{len(project.state.classes)} in the config.')
    return cfg


def _training_only(cfg: Config) -> List[str]:
    """Make a config's run train and nothing else: no acquisition hook (``select`` acquires), no
    checkpoints but the final one (``train`` writes ``model.pth``), no validation or test (the project
    has no test labels). Returns what it left out, to say so."""
    hooks = cfg.get('custom_hooks') or []
    kept = [h for h in hooks if not (isinstance(h, dict) and h.get('type') in ('ActiveLearningHook',
                                                                                 'mmal.ActiveLearningHook'))]
    dropped = ['its ActiveLearningHook (`al_project.py select` acquires)'] if len(kept) < len(hooks) else []
    cfg.custom_hooks = kept
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint:
        checkpoint.update(interval=-1, save_last=False, save_best=None)  # only model.pth is written
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader', 'test_evaluator'):
        cfg[key] = None
    return dropped


def train(project: LabelingProject, launcher: str = 'none', progress: bool = True,
          options: Optional[dict] = None) -> Optional[str]:
    """Train the config's model on the labeled set; writes ``cycle_<k>/model.pth`` (and nothing else
    that lasts: mmengine's logs stay in ``cycle_<k>/train/``, no epoch checkpoints).

    With nothing labeled yet there is nothing to train: it says so, and the next step is ``select``
    (whose first batch is picked at random).

    Args:
        project: The project (its lock held).
        launcher: ``none``, ``pytorch`` or ``slurm``.
        progress: Show a progress line.
        options: ``--cfg-options`` merged into the project's config for this run.

    Returns:
        The checkpoint's path, or None when nothing is labeled.
    """
    project.expect('train', ('train', 'select'))
    labeled = project.labeled()
    if not labeled['images']:
        if get_rank() == 0 and project.state.step != 'select':
            project.state.step = 'select'
            project.save()
        return None
    cfg = project_config(project, options)
    al = cfg.get('active_learning') or {}
    check_gain_estimate(al.get('gain_estimate', False), al.get('control_fraction', 0.0), 'active_learning.')
    snapshot = project.cycle_path('labeled.json')
    if get_rank() == 0:
        project.snapshot_labeled()
    barrier()
    final = project.cycle_path('model.pth')
    _train_model(project, cfg, snapshot, project.cycle_path('train'), final, f'cycle {project.state.cycle}',
                 launcher, progress)
    if al.get('gain_estimate'):
        _train_shadows(project, cfg, launcher, progress)
    if get_rank() == 0:
        signal = stop_signal(project, project_config(project, options))  # (cfg lost its test side)
        if signal is not None:
            last = signal['agreements'][-1]
            print(f'stopping rule: agreement with the cycle {project.state.cycle - 1} model on the stop set '
                  + ('- (no earlier model)' if last is None else f'{last:.3f}')
                  + f'; it fires at >= {signal["threshold"]} for {signal["window"]} cycles in a row: '
                  + ('it fires now: another batch may not be worth labeling.' if signal['fires'] else 'not yet.'))
        project.state.step = 'select'
        project.save()
    barrier()
    return final


def _train_model(project: LabelingProject, base: Config, labeled_file: str, train_dir: str, final: str, what: str,
                 launcher: str, progress: bool) -> None:
    """Train ``base``'s model on the COCO labeled set ``labeled_file`` and save it as ``final``."""
    cfg = copy.deepcopy(base)
    pipeline = leaf_dataset(cfg.train_dataloader.dataset.to_dict())['pipeline']
    cfg.train_dataloader.dataset = dict(
        type='CocoDataset', data_root='', ann_file=osp.abspath(labeled_file),
        data_prefix=dict(img=project.state.image_root + osp.sep), metainfo=dict(classes=tuple(project.state.classes)),
        filter_cfg=dict(filter_empty_gt=False, min_size=0), pipeline=pipeline)
    for left_out in _training_only(cfg):
        if get_rank() == 0 and final == project.cycle_path('model.pth'):
            print(f'note: training without {left_out}.')
    if get_rank() == 0 and osp.isdir(train_dir):
        shutil.rmtree(train_dir)  # an interrupted training starts over (see the AL driver)
    barrier()
    cfg.work_dir = train_dir
    cfg.resume, cfg.load_from = False, None
    cfg.randomness = dict(seed=project.state.cycle)
    method = method_from_flags(cfg.get('active_learning'), seed=project.state.cycle)
    cfg.custom_hooks = with_hooks(cfg.get('custom_hooks'), [*method.training_hooks, dict(type='InterruptHook')] + (
        [dict(type='TrainProgressHook')] if progress else []))
    dist.distributed_cfg(cfg, launcher)
    train_and_save(Runner.from_cfg(cfg), final, what, f'with `al_project.py train {project.root}`')


#: The shadow models of ``active_learning.gain_estimate`` in ``cycle_<k>/gain/<name>/`` (as the driver's).
SHADOWS = ('picked', 'random')


def _train_shadows(project: LabelingProject, cfg: Config, launcher: str, progress: bool) -> None:
    """With ``gain_estimate``: train the two shadow models of the previous batch (the labeled set
    before it plus its first picks, or plus as many of its control images), unless they exist; the
    next batch's review scores them on its returned labels (:func:`~.review.control_estimate`)."""
    cycle = project.state.cycle
    before_path, batch_path = (project.cycle_path(name, cycle=cycle - 1) for name in ('labeled.json', 'selected.json'))
    if cycle < 1 or not (osp.isfile(before_path) and osp.isfile(batch_path)):
        return
    batch = read_json(batch_path, 'the project is damaged.')
    drawn = set(batch.get('control') or [])
    control = [int(p['img_id']) for p in batch['selected'] if p['index'] in drawn]
    picks = [int(p['img_id']) for p in batch['selected'] if p['index'] not in drawn]
    size = min(len(picks), len(control))
    if not size:
        return
    before = {im['id'] for im in read_json(before_path, 'the project is damaged.')['images']}
    labeled = read_json(project.cycle_path('labeled.json'), 'the project is damaged.')
    for name, added in zip(SHADOWS, (picks[:size], control[:size])):
        final = project.cycle_path(osp.join('gain', name, 'model.pth'))
        if osp.isfile(final):
            continue
        keep = before | set(added)
        subset = dict(labeled, images=[im for im in labeled['images'] if im['id'] in keep],
                      annotations=[a for a in labeled['annotations'] if a['image_id'] in keep])
        labeled_file = project.cycle_path(osp.join('gain', name, 'labeled.json'))
        if get_rank() == 0:
            atomic_write_json(labeled_file, subset)
        barrier()
        if get_rank() == 0:
            print(f'gain estimate: training the {name} shadow model ({len(subset["images"])} images).')
        _train_model(project, cfg, labeled_file, project.cycle_path(osp.join('gain', name, 'train')), final,
                     f'cycle {cycle} ({name} shadow)', launcher, progress)


def stop_signal(project: LabelingProject, cfg: Config) -> Optional[Dict[str, Any]]:
    """With ``active_learning.stop`` in the config: the new model's boxes on the project's stop set (pool
    images drawn once, labeled or not), their agreement with the previous cycle's model's
    (:mod:`mmal.active.stopping`), written with the agreements so far to ``cycle_<k>/stop.json``.

    Returns:
        The record (``agreements`` per cycle, ``fires``, ``threshold``, ``window``), or None without a rule.
    """
    rule = StopRule.from_cfg((cfg.get('active_learning') or {}).get('stop'))
    if rule is None:
        return None
    ids = [project.pool[n]['id'] for n in rule.stop_indices(len(project.pool), seed=0)]
    index = {name: k for k, name in enumerate(project.state.classes)}
    images: Dict[str, Any] = {str(i): [[[b.x1, b.y1, b.x2, b.y2] for b in found], [b.score or 0.0 for b in found],
                                       [index[b.label] for b in found]]
                              for i, found in predictions(project, cfg, ids, 0.05).items()}
    previous_path = project.cycle_path('stop.json', cycle=project.state.cycle - 1)
    previous = read_json(previous_path, 'the project is damaged.') if osp.isfile(previous_path) else None
    agreement = None
    if previous is not None:
        common = sorted(set(previous['images']) & set(images), key=int)
        agreement = detection_agreement([previous['images'][k] for k in common], [images[k] for k in common],
                                        len(project.state.classes), rule.score_thr)
    agreements = (previous['agreements'] if previous is not None else []) + [agreement]
    record = dict(cycle=project.state.cycle, threshold=rule.threshold, window=rule.window, agreements=agreements,
                  fires=rule.fires(agreements), images=images)
    atomic_write_json(project.cycle_path('stop.json'), record)
    return record


def _pool_dataset(project: LabelingProject, pipeline: List[Dict[str, Any]]) -> ImagePoolDataset:
    return ImagePoolDataset(pool=[dict(img_id=im['id'], img_path=project.image_file(im)) for im in project.pool],
                            pipeline=pipeline)


def select(project: LabelingProject, budget: int, scorer: Optional[str] = None, selection: Optional[str] = None,
           batch_size: int = 8, progress: bool = True, budget_unit: str = 'images',
           box_threshold: float = 0.3, options: Optional[dict] = None) -> Selection:
    """Pick the next batch from the unlabeled pool with the cycle's model; writes ``cycle_<k>/selected.json``.

    With nothing labeled yet there is no model: the first batch is picked at random (said).

    Raises:
        UserError: Out of order, no model for a method that needs one, nothing left to label.
    """
    project.expect('select', ('select', 'export'))
    cfg = project_config(project, options)
    al = cfg.get('active_learning') or {}
    method = method_from_flags(al, scorer, selection, seed=project.state.cycle)
    features = build_features(al.get('features'))
    control = al.get('control_fraction', 0.0)
    check_control_fraction(control, budget_unit, 'active_learning.')
    needs_model = method.requires - ({FEATURES} if features is not None else set())
    checkpoint = project.cycle_path('model.pth')
    model = None
    if osp.isfile(checkpoint):
        model = build_model(cfg, checkpoint)
    elif not needs_model:  # random, or a selector on label-free features: no model needed
        pass
    elif not project.labeled()['images']:
        print(f'note: nothing is labeled yet, so there is no model for {method.name}: the first batch is picked at '
              'random.')
        method = method_from_flags(None, 'Random', None, seed=project.state.cycle)
    else:
        raise UserError(f'{method.name} needs a model and cycle {project.state.cycle} has none; run '
                        f'`al_project.py train {project.root}` first, or pick the first batch with --scorer Random.')
    spec = AcquisitionSpec(method, budget, budget_unit=budget_unit, box_threshold=box_threshold,
                           adapter=al.get('adapter'), batch_size=batch_size, progress=progress, features=features,
                           features_cache=osp.join(project.root, 'features'),
                           control_fraction=control if model is not None else 0.0, where='--')
    project.snapshot_labeled()
    positions = {im['id']: n for n, im in enumerate(project.pool)}
    unlabeled = [positions[i] for i in project.unlabeled_ids()]
    if not unlabeled:
        raise UserError('every pool image is labeled: nothing is left to select.')
    labeled = sorted(set(range(len(project.pool))) - set(unlabeled))
    dataset = _pool_dataset(project, scoring_pipeline(leaf_dataset(cfg.test_dataloader.dataset.to_dict())['pipeline']))
    record = acquire(spec, model, dataset, labeled, unlabeled=unlabeled, cycle=project.state.cycle,
                     num_labeled=len(labeled))
    atomic_write_json(project.cycle_path('selected.json'), record.to_json())
    project.state.step = 'export'
    project.save()
    return record


def predictions(project: LabelingProject, cfg: Config, ids: List[int], threshold: float,
                batch_size: int = 8, checkpoint: Optional[str] = None) -> Dict[int, List[Box]]:
    """The cycle's model's (or ``checkpoint``'s) boxes (in original image pixels) above ``threshold``
    for pool images ``ids``."""
    checkpoint = checkpoint or project.cycle_path('model.pth')
    if not osp.isfile(checkpoint) or not ids:
        return {}
    model = build_model(cfg, checkpoint)
    pipeline = scoring_pipeline(leaf_dataset(cfg.test_dataloader.dataset.to_dict())['pipeline'])
    dataset = _pool_dataset(project, pipeline)
    position = {im['id']: n for n, im in enumerate(project.pool)}
    found = predict_boxes(model, dataset, threshold, batch_size, [position[i] for i in ids])
    classes = project.state.classes
    return {project.pool[n]['id']: [Box(label=classes[label], x1=b[0], y1=b[1], x2=b[2], y2=b[3], score=s)
                                    for b, s, label in zip(*found[n])] for n in found}


def export(project: LabelingProject, url_prefix: str = '/data/local-files/?d=', pre_threshold: float = 0.3,
           batch_size: int = 8, options: Optional[dict] = None) -> Dict[str, str]:
    """Write the selected batch for Label Studio and CVAT, with the model's boxes as pre-annotations,
    and keep the model's boxes down to :data:`REVIEW_THRESHOLD` in ``cycle_<k>/predictions.json``
    (the review of the labels that come back reads them: :mod:`.review`).

    Returns:
        The files written.
    """
    project.expect('export', ('export', 'import'))
    if not 0 <= pre_threshold <= 1:
        raise UserError(f'--pre-threshold must lie in [0, 1], got {pre_threshold}.')
    cfg = project_config(project, options)
    selection = project.selection()
    ids = [int(p.img_id) for p in selection.selected]
    boxes = predictions(project, cfg, ids, min(pre_threshold, REVIEW_THRESHOLD), batch_size)
    if boxes:  # what the model that picked the batch sees in it: the review of the returned labels reads it
        shadows = {name: project.cycle_path(osp.join('gain', name, 'model.pth')) for name in SHADOWS}
        seen = {name: predictions(project, cfg, ids, REVIEW_THRESHOLD, batch_size, path)
                for name, path in shadows.items() if osp.isfile(path)}  # gain_estimate: scored by the review
        atomic_write_json(project.cycle_path('predictions.json'), dict(
            model=project.cycle_path('model.pth'), threshold=min(pre_threshold, REVIEW_THRESHOLD),
            images={str(i): [asdict(b) for b in found] for i, found in boxes.items()},
            **({'shadows': {name: {str(i): [asdict(b) for b in found] for i, found in got.items()}
                            for name, got in seen.items()}} if len(seen) == len(SHADOWS) else {})))
    shown = {i: [b for b in found if (b.score or 0) >= pre_threshold] for i, found in boxes.items()}
    files = project.write_export(project.batch(selection, shown), url_prefix)
    project.state.out, project.state.step = ids, 'import'
    project.save()
    return files
