"""Shared fixtures: a small toy VOC set and the toy SSD config pointed at it."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import socket
import subprocess
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
    """Every file under ``folder`` with its bytes and permissions (None when it does not exist); the
    run's log (``al.log``), which records failed runs too, is left out."""
    if not osp.exists(folder):
        return None
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            if osp.relpath(path, folder) == 'al.log':
                continue
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


# -- running the tools, as a user would ------------------------------------------------------------
AL_TRAIN = osp.join(REPO, 'tools', 'al_train.py')


def write_config(tmp_path, data_root, name='al.py', **al):
    settings = dict(initial_labeled=8, budget=6, num_cycles=3, num_trials=1, batch_size=8,
                    scorer=dict(type='Entropy'), adapter=dict(box_mode='anchors'))
    settings.update(al)
    text = f'''
_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc_al.py')!r}
data_root = {data_root!r}
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
max_iters = 3
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_cfg = None  # the driver tests every cycle's model itself: no second evaluation inside training
val_dataloader = None
val_evaluator = None
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
log_level = 'WARNING'
active_learning = {settings!r}
'''
    path = tmp_path / name
    path.write_text(text)
    return str(path)

def al_train(config, work_dir, *extra, check=True):
    proc = subprocess.run([sys.executable, AL_TRAIN, config, '--work-dir', str(work_dir), '--no-progress', *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

def labeled_sets(work_dir, cycles=3):
    out = []
    for k in range(cycles):
        with open(osp.join(work_dir, 'trial_0', f'cycle_{k}', 'labeled.json')) as f:
            out.append(json.load(f)['indices'])
    return out


def indices(selection: dict) -> list:
    """The pool indices of a selection record (``selected.json``, ``acquisition.json``), in pick order."""
    return [p['index'] for p in selection['selected']]


def scores(selection: dict) -> list:
    """The scores of those picks."""
    return [p['score'] for p in selection['selected']]


def dist_train(config, work_dir, *extra):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir), '--no-progress',
                           *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc
