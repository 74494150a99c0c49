"""Shared fixtures: a small toy VOC set and the toy SSD config pointed at it."""
from __future__ import annotations

import contextlib
import hashlib
import os
import os.path as osp
import sys

import pytest
import torch
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MessageHub

import mmal  # noqa: F401  (applies mmal.compat, registers mmal modules)
from mmal.datasets import ToyVOCSpec, generate_toy_voc

# Models built outside a Runner resolve names in mmdet's scope, as a Runner with mmdet configs does.
register_all_modules(init_default_scope=True)


def pytest_configure(config):
    """Under pytest-xdist (``tools/run.sh test`` runs two workers on two cores) each worker and every
    tool it starts computes with one torch thread, rather than two workers each spinning two."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        os.environ['OMP_NUM_THREADS'] = '1'
        torch.set_num_threads(1)


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


@contextlib.contextmanager
def at_iteration(iteration: int, max_iters: int = 10 ** 7):
    """Make the message hub report a runner's ``iter`` / ``max_iters`` (what schedules read)."""
    hub = MessageHub.get_current_instance()
    saved = {k: hub.runtime_info.get(k) for k in ('iter', 'max_iters')}
    hub.update_info('iter', iteration)
    hub.update_info('max_iters', max_iters)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                hub.runtime_info.pop(key, None)
            else:
                hub.update_info(key, value)


def snapshot(folder):
    """Every file under ``folder`` with its bytes and permissions (None when it does not exist)."""
    if not osp.exists(folder):
        return None
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode)
    return out


def tool(name: str):
    """A tools/ script as a module: ``tool('al_train').main(argv)`` runs it in this process."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def fails(script, argv, capsys, *folders):
    """Run ``script.main(argv)``: exit code 2, one ``error:`` line on stderr (progress bars aside), no
    traceback, and ``folders`` byte-identical afterwards. Returns the error line."""
    before = [snapshot(str(f)) for f in folders]
    code = script.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line for line in err.splitlines() if 'error' in line.lower() or 'Traceback' in line]
    assert len(lines) == 1 and err.endswith(lines[0]) and lines[0].startswith('error: '), err
    assert [snapshot(str(f)) for f in folders] == before
    return lines[0]
