"""Hooks: ActiveLearningHook (acquisition at the end of a plain mmdet training run), training
progress, LLAL's gradient stop."""
from __future__ import annotations

import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from torch import nn
from tqdm import tqdm

from .. import interrupt
from ..datasets.image_pool import ImagePoolDataset
from ..errors import UserError, report_uncaught_user_errors
from ..fileio import atomic_write_json
from .acquisition import AcquisitionSpec, acquire
from .method import build_method


def scoring_pipeline(test_pipeline) -> list:
    """The config's test pipeline without annotation loading (the pool has no labels)."""
    return [dict(t) for t in test_pipeline if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]


def with_hooks(custom_hooks: Optional[Sequence[Dict[str, Any]]],
               hooks: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``custom_hooks`` plus each of ``hooks`` whose type it does not hold yet."""
    out = [dict(h) for h in custom_hooks or []]
    present = {h.get('type') for h in out}
    return out + [dict(h) for h in hooks if h['type'] not in present]


def scoring_model(runner) -> nn.Module:
    """The weights to score with: the EMA model when the run has an ``EMAHook``, else the model."""
    for hook in runner.hooks:
        if isinstance(hook, EMAHook) and getattr(hook, 'ema_model', None) is not None:
            return hook.ema_model.module
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def training_images(runner) -> List[str]:
    """Real paths of the training set's images.

    Raises:
        UserError: The training dataset cannot list its images.
    """
    dataset = runner.train_dataloader.dataset
    if not hasattr(dataset, 'get_data_info'):
        raise UserError(f'ActiveLearningHook: the training dataset {type(dataset).__name__} cannot list its images '
                        '(no get_data_info), so the pool cannot be told apart from it.')
    return [osp.realpath(dataset.get_data_info(i)['img_path']) for i in range(len(dataset))]


@HOOKS.register_module()
class ActiveLearningHook(Hook):
    """After training, score an unlabeled pool and write the images to label next.

    Add it to any mmdet config (with ``custom_imports=dict(imports=['mmal'])``)::

        custom_hooks = [dict(type='ActiveLearningHook', pool='data/VOCdevkit/VOC2012/ImageSets/Main/train.txt',
                             budget=1000, scorer=dict(type='Entropy'))]

    The scorer, selection and adapter are checked against the model in ``before_run``, before
    any training. Pool images that are in the training set are never candidates (coverage
    selectors such as ``KCenterGreedy`` count them as labeled). With an ``EMAHook`` the EMA
    weights are scored. In a distributed run every rank scores its share of the pool and rank 0
    selects and writes.

    Args:
        pool: The unlabeled images: a VOC ImageSets list, a COCO json, a folder (see
            :class:`~mmal.datasets.ImagePoolDataset`), or a full dataset config.
        budget: How many images to select.
        img_dir: The folder a COCO pool's ``file_name`` entries are relative to (default: the json's
            folder; mmdet configs usually keep it in ``data_prefix=dict(img=...)``).
        scorer: Scorer config (``mmal.registry.SCORERS``); None: the default of
            :func:`~mmal.engine.method.build_method` (``Random`` when the selection ranks scores,
            none when it does not: BADGE, TypiClust, ...).
        selection: Selector config (``mmal.registry.SELECTORS``); None: ``TopK``.
        adapter: Adapter options (``box_mode``, ``score_thr``, ``mc_samples``, ...), see
            :class:`~mmal.models.DetectionAdapter`.
        out_file: Output JSON, relative to the work dir unless absolute.
        batch_size: Images per scoring batch.
        num_workers: Dataloader workers of the scoring pass.
        progress: Show a progress bar.
        seed: Seed of the scorer and selector.
    """

    priority = 'LOW'

    def __init__(self,
                 pool: Union[str, dict],
                 budget: int,
                 scorer: Optional[dict] = None,
                 selection: Union[str, dict, None] = None,
                 adapter: Optional[dict] = None,
                 out_file: str = 'acquisition.json',
                 batch_size: int = 8,
                 num_workers: int = 0,
                 progress: bool = True,
                 seed: int = 0,
                 img_dir: Optional[str] = None) -> None:
        report_uncaught_user_errors()  # a refusal is one sentence under any training script
        self.pool, self.out_file, self.img_dir = pool, out_file, img_dir
        self.method = build_method(scorer, selection, seed=seed, where='ActiveLearningHook: ')
        self.spec = AcquisitionSpec(self.method, budget, adapter=adapter, batch_size=batch_size,
                                    num_workers=num_workers, progress=progress, where='ActiveLearningHook: ')

    def _listed_pool(self, pipeline) -> ImagePoolDataset:
        if isinstance(self.pool, dict):
            return ImagePoolDataset(**{**self.pool, 'pipeline': self.pool.get('pipeline', pipeline)})
        return ImagePoolDataset(pool=self.pool, pipeline=pipeline, img_dir=self.img_dir)

    def before_run(self, runner) -> None:
        """Fail before training when the model cannot be scored this way or the pool is unusable
        (its image files missing included)."""
        self.spec.service().check_model(runner.model.module if is_model_wrapper(runner.model) else runner.model)
        needed = self.method.training_hooks
        present = {type(hook).__name__ for hook in runner.hooks} if needed else set()
        missing_hooks = [h['type'] for h in needed if h['type'] not in present]
        if missing_hooks:
            raise UserError(f'ActiveLearningHook: {self.method.name} reads what {missing_hooks[0]} records while '
                            f"training; add dict(type='{missing_hooks[0]}') to custom_hooks.")
        listed = self._listed_pool([])
        missing = [d['img_path'] for d in listed.data_list if not osp.isfile(d['img_path'])]
        if missing:
            hint = (' (a COCO pool\'s file names are relative to the json\'s folder unless the hook\'s img_dir '
                    'says otherwise)' if isinstance(self.pool, str) and self.pool.endswith('.json') else '')
            raise UserError(f'ActiveLearningHook: {len(missing)} of {len(listed)} pool images do not exist, e.g. '
                            f'{missing[0]}{hint}; fix the pool or its image folder.')
        train = set(training_images(runner))
        if all(osp.realpath(d['img_path']) in train for d in listed.data_list):
            raise UserError(f'ActiveLearningHook: all {len(listed)} pool images are in the training set, so there is '
                            'nothing to select; point pool at the images that are not labeled yet (or train on a '
                            'part of the list, e.g. the training dataset\'s indices=N).')

    def _scoring_set(self, runner) -> Tuple[ImagePoolDataset, List[int], List[int], int]:
        """The pool (plus, for coverage selectors, the training images not in it), its candidates and
        its labeled indices, and how many pool images are training images."""
        pipeline = scoring_pipeline(runner.cfg.test_dataloader.dataset.pipeline)
        items = [dict(img_id=d['img_id'], img_path=d['img_path']) for d in self._listed_pool([]).data_list]
        train = training_images(runner)
        in_train = set(train)
        is_labeled = [osp.realpath(d['img_path']) in in_train for d in items]
        labeled = [i for i, flag in enumerate(is_labeled) if flag]
        candidates = [i for i, flag in enumerate(is_labeled) if not flag]
        in_training_set = len(labeled)
        if self.method.selector.needs_labeled:
            listed = {osp.realpath(d['img_path']) for d in items}
            extra = [p for p in dict.fromkeys(train) if p not in listed]
            labeled += list(range(len(items), len(items) + len(extra)))
            items += [dict(img_id=osp.splitext(osp.basename(p))[0], img_path=p) for p in extra]
        return ImagePoolDataset(pool=items, pipeline=pipeline), candidates, labeled, in_training_set

    def after_train(self, runner) -> None:
        start = time.time()
        pool, candidates, labeled, in_training_set = self._scoring_set(runner)
        record = acquire(self.spec, scoring_model(runner), pool, labeled, unlabeled=candidates,
                         pool_size=len(candidates) + in_training_set, in_training_set=in_training_set)
        if get_rank() != 0:
            return
        record.context['seconds'] = round(time.time() - start, 2)
        out = self.out_file if osp.isabs(self.out_file) else osp.join(runner.work_dir, self.out_file)
        for image in record.unreadable:
            runner.logger.warning(f'ActiveLearningHook: skipped unreadable image {image.img_path}: {image.error}')
        atomic_write_json(out, record.to_json())
        runner.logger.info(f'ActiveLearningHook: selected {len(record.selected)} of {len(candidates)} candidate images '
                           f'({in_training_set} pool images are training images) with {self.method.name}; written '
                           f'to {out}')


@HOOKS.register_module()
class InterruptHook(Hook):
    """Stop training at the next iteration once Ctrl-C was pressed, even if a library swallowed the
    ``KeyboardInterrupt`` (:mod:`mmal.interrupt`). The AL driver adds it to every cycle's runner."""

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        interrupt.check()

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        interrupt.check()

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        interrupt.check()


@HOOKS.register_module()
class TrainProgressHook(Hook):
    """A progress bar over the training iterations (rank 0), with iterations per second.

    The AL driver adds it to every cycle's Runner; any config may add it to ``custom_hooks``.
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        self._bar = tqdm(total=runner.max_iters, initial=runner.iter, desc='training', unit='it',
                         disable=runner.rank != 0, dynamic_ncols=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._bar.update(1)

    def after_train(self, runner) -> None:
        self._bar.close()


@HOOKS.register_module()
class LLALDetachHook(Hook):
    """Stop LLAL's loss-prediction gradient into the backbone from epoch ``epoch`` on (LLAL detaches
    after 120 of 200 epochs). The model reads its ``llal_detached`` flag.

    Args:
        epoch: First (0-based) training epoch whose loss-prediction features are detached.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'llal_detached'):
            raise TypeError(f'LLALDetachHook: {type(model).__name__} has no LLAL loss-prediction module.')
        model.llal_detached = runner.epoch >= self.epoch
