"""Assembling each cycle's mmengine config: the training set is the cycle's labeled subset of the
pool (plus, semi-supervised, the unlabeled rest), its seed is the cycle's, and its work dir lies in
the cycle's folder."""
from __future__ import annotations

import copy
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdet.registry import DATASETS
from mmengine.config import Config

from .. import dist
from ..engine.hooks import with_hooks

VOC_LAYOUT = ('VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main/trainval.txt,test.txt} '
              '(and VOC2012 likewise for VOC07+12; PASCAL VOC is at host.robots.ox.ac.uk/pascal/VOC)')


def with_pipeline(dataset_cfg: Dict[str, Any], pipeline: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A copy of a dataset config whose (nested) datasets all use ``pipeline``."""
    cfg = copy.deepcopy(dataset_cfg)
    if 'datasets' in cfg:
        cfg['datasets'] = [with_pipeline(d, pipeline) for d in cfg['datasets']]
    elif 'dataset' in cfg:
        cfg['dataset'] = with_pipeline(cfg['dataset'], pipeline)
    else:
        cfg['pipeline'] = pipeline
    return cfg


def data_roots(dataset_cfg: Dict[str, Any]) -> List[Tuple[str, str]]:
    """``(data_root, expected layout)`` of every leaf of a (nested) dataset config."""
    if 'datasets' in dataset_cfg:
        return [r for d in dataset_cfg['datasets'] for r in data_roots(d)]
    if 'dataset' in dataset_cfg:
        return data_roots(dataset_cfg['dataset'])
    if not dataset_cfg.get('data_root'):
        return []
    kind = dataset_cfg.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    layout_hint = getattr(cls, 'layout_hint', None)
    hint = layout_hint() if layout_hint is not None else VOC_LAYOUT
    return [(dataset_cfg['data_root'], hint)]


class CycleConfig(Config):
    """A cycle's config, whose text is formatted once.

    mmengine formats the whole config with yapf (about 0.4 s) on every dump, log line and
    checkpoint: seven times per cycle. A cycle's config does not change once its runner exists, so
    the first formatting is kept. mmengine 0.10.7 turns any exception of the formatting into a
    ``SyntaxError`` (a bare ``except``), Ctrl-C included: that one is given back as Ctrl-C.
    """

    @property
    def pretty_text(self) -> str:
        text = self.__dict__.get('_mmal_text')  # (Config stores plain attributes in the config itself)
        if text is None:
            try:
                text = super().pretty_text
            except SyntaxError as err:
                if isinstance(err.__context__, KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                raise
            object.__setattr__(self, '_mmal_text', text)
        return text


def cycle_config(cfg: Config, name: str, pool_cfg: Dict[str, Any], cycle_dir: str, labeled_file: str, seed: int, *,
                 load_from: Optional[str] = None, semi_supervised: Optional[Dict[str, Any]] = None,
                 progress: bool = True, launcher: str = 'none',
                 training_hooks: Sequence[Dict[str, Any]] = ()) -> CycleConfig:
    """The mmengine config of one cycle's ``Runner``.

    Args:
        cfg: The experiment's config (its ``active_learning`` section is dropped).
        name: The cycle's name in mmengine's experiment name, e.g. ``'trial0_cycle2'``.
        pool_cfg: The pool's dataset config.
        cycle_dir: The cycle's folder; mmengine's files go to ``<cycle_dir>/train``.
        labeled_file: The cycle's ``labeled.json``: the training set.
        seed: The cycle's seed.
        load_from: Weights to start from (fine-tuning) or to test.
        semi_supervised: ``active_learning.semi_supervised``: train on the unlabeled rest too.
        progress: Add a training progress bar.
        launcher: ``'none'`` or the distributed launcher.
        training_hooks: Hooks the acquisition method needs while training
            (:attr:`~mmal.engine.AcquisitionMethod.training_hooks`), added unless the config has them.
    """
    out = CycleConfig(copy.deepcopy(cfg.to_dict()), filename=cfg.filename)
    out.pop('active_learning', None)
    out.work_dir = osp.join(cycle_dir, 'train')
    out.experiment_name = f'{name}_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}'
    out.train_dataloader.dataset = dict(type='IndexSubset', dataset=pool_cfg, indices_file=labeled_file)
    out.randomness = dict(seed=seed)
    out.resume = False
    out.load_from = load_from
    if semi_supervised is not None:
        _semi_supervised_training_set(out, pool_cfg, labeled_file, semi_supervised)
    out.custom_hooks = with_hooks(out.get('custom_hooks'), [*training_hooks, dict(type='InterruptHook')])
    if progress:
        out.custom_hooks.append(dict(type='TrainProgressHook'))
    dist.distributed_cfg(out, launcher)
    return out


def _semi_supervised_training_set(cfg: Config, pool_cfg: Dict[str, Any], labeled_file: str,
                                  ssl: Dict[str, Any]) -> None:
    """Train on the labeled images and the unlabeled rest of the pool, mixed in every batch."""
    unlabeled = with_pipeline(pool_cfg, ssl['unlabeled_pipeline']) if ssl.get('unlabeled_pipeline') else None
    cfg.train_dataloader.dataset = dict(type='SemiSupervisedSubset', dataset=pool_cfg, unlabeled_dataset=unlabeled,
                                        unlabeled_views=ssl.get('unlabeled_views', 1), indices_file=labeled_file)
    cfg.train_dataloader.sampler = dict(type='LabeledRatioSampler', batch_size=cfg.train_dataloader.batch_size,
                                        labeled_ratio=ssl.get('labeled_ratio', 0.5))
    cfg.train_dataloader.batch_sampler = None  # grouping by aspect ratio would undo the mix
