"""Shared fixtures: a small toy VOC set and the toy SSD config pointed at it."""
from __future__ import annotations

import os.path as osp

import pytest

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal.datasets import ToyVOCSpec, generate_toy_voc
from mmdet.utils import register_all_modules
from mmengine.config import Config

# Models built outside a Runner resolve names in mmdet's scope, as a Runner with mmdet configs does.
register_all_modules(init_default_scope=True)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_SSD_CONFIG = osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')


@pytest.fixture(scope='session')
def toy_voc_root(tmp_path_factory) -> str:
    """``data_root`` of a 40 + 16 image toy VOC set."""
    root = tmp_path_factory.mktemp('toy') / 'toy_voc'
    return generate_toy_voc(str(root), ToyVOCSpec(num_trainval=40, num_test=16, seed=1))


def toy_ssd_cfg(data_root: str, work_dir: str, epochs: int = 1, config: str = TOY_SSD_CONFIG) -> Config:
    """The demo SSD config (or ``config``) on ``data_root``, ``epochs`` long, quiet and small-batched."""
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = epochs
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_level = 'WARNING'
    return cfg
