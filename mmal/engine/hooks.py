"""ActiveLearningHook: acquisition at the end of a plain mmdet training run."""
from __future__ import annotations

import os.path as osp
import time
from typing import Optional, Union

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from tqdm import tqdm

from ..datasets.image_pool import ImagePoolDataset
from ..fileio import atomic_write_json
from ..registry import SCORERS
from .acquisition import build_adapter, pool_loader, score_pool


def scoring_pipeline(test_pipeline) -> list:
    """The config's test pipeline without annotation loading (the pool has no labels)."""
    return [dict(t) for t in test_pipeline if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]


@HOOKS.register_module()
class ActiveLearningHook(Hook):
    """After training, score an unlabeled pool and write the images to label next.

    Add it to any mmdet config (with ``custom_imports=dict(imports=['mmal'])``)::

        custom_hooks = [dict(type='ActiveLearningHook', pool='data/VOCdevkit/VOC2012/ImageSets/Main/train.txt',
                             budget=1000, scorer=dict(type='Entropy'))]

    Args:
        pool: The unlabeled images: a VOC ImageSets list, a COCO json, a folder (see
            :class:`~mmal.datasets.ImagePoolDataset`), or a full dataset config.
        budget: How many images to select.
        scorer: Scorer config (see ``mmal.registry.SCORERS``).
        adapter: Adapter options (``box_mode``, ``score_thr``, ``mc_samples``, ...), see
            :class:`~mmal.models.DetectionAdapter`.
        out_file: Output JSON, relative to the work dir unless absolute.
        batch_size: Images per scoring batch.
        num_workers: Dataloader workers of the scoring pass.
        progress: Show a progress bar.
    """

    priority = 'LOW'

    def __init__(self,
                 pool: Union[str, dict],
                 budget: int,
                 scorer: dict = dict(type='Entropy'),
                 adapter: Optional[dict] = None,
                 out_file: str = 'acquisition.json',
                 batch_size: int = 8,
                 num_workers: int = 0,
                 progress: bool = True) -> None:
        if budget < 1:
            raise ValueError(f'ActiveLearningHook: budget must be a positive number of images, got {budget}.')
        self.pool, self.budget = pool, budget
        self.scorer_cfg, self.adapter_cfg = dict(scorer), dict(adapter or {})
        self.out_file, self.batch_size, self.num_workers, self.progress = out_file, batch_size, num_workers, progress
        self.scorer = SCORERS.build(self.scorer_cfg)  # fail at config time on an unknown scorer

    @staticmethod
    def _dataset(pool, pipeline) -> ImagePoolDataset:
        if isinstance(pool, dict):
            return ImagePoolDataset(**{**pool, 'pipeline': pool.get('pipeline', pipeline)})
        return ImagePoolDataset(pool=pool, pipeline=pipeline)

    def after_train(self, runner) -> None:
        if runner.rank != 0:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        pipeline = scoring_pipeline(runner.cfg.test_dataloader.dataset.pipeline)
        adapter = build_adapter(model, self.scorer.requires, self.adapter_cfg)
        pool = self._dataset(self.pool, pipeline)
        start = time.time()
        failed: list = []
        values = score_pool(adapter, self.scorer, pool_loader(pool, self.batch_size, self.num_workers),
                            self.progress, 'acquisition', failed)
        readable = torch.ones(len(pool), dtype=torch.bool)
        readable[[i for i, _ in failed]] = False
        labeled = None
        if self.scorer.requires == {'features'}:  # core-set: distances to the labeled images
            train = runner.train_dataloader.dataset
            train_paths = [train.get_data_info(i)['img_path'] for i in range(len(train))]
            labeled_values = score_pool(adapter, self.scorer,
                                        pool_loader(self._dataset(train_paths, pipeline), self.batch_size),
                                        self.progress, 'labeled features', [])
            labeled = torch.cat([torch.zeros(len(values), dtype=torch.bool),
                                 torch.ones(len(labeled_values), dtype=torch.bool)])
            values = torch.cat([values, labeled_values])
            readable = torch.cat([readable, torch.isfinite(labeled_values).all(1)])
        kept = readable.nonzero().squeeze(1)
        budget = min(self.budget, int((~labeled[kept]).sum()) if labeled is not None else len(kept))
        picks = kept[self.scorer.select(values[kept], budget,
                                        labeled=None if labeled is None else labeled[kept])].tolist()
        scores = values if values.dim() == 1 else None
        selected = []
        for i in picks:
            info = pool.get_data_info(i)
            selected.append(dict(index=i, img_id=info['img_id'], img_path=info['img_path'],
                                 score=None if scores is None else float(scores[i])))
        for i, err in failed:
            runner.logger.warning(f'ActiveLearningHook: skipped unreadable image {pool.get_data_info(i)["img_path"]}: '
                                  f'{err}')
        out = self.out_file if osp.isabs(self.out_file) else osp.join(runner.work_dir, self.out_file)
        atomic_write_json(out, dict(scorer=self.scorer_cfg, pool_size=len(pool), budget=self.budget,
                                    seconds=round(time.time() - start, 2), selected=selected,
                                    unreadable=[pool.get_data_info(i)['img_path'] for i, _ in failed]))
        runner.logger.info(f'ActiveLearningHook: selected {len(selected)} of {len(pool)} pool images '
                           f'with {type(self.scorer).__name__}; written to {out}')


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
