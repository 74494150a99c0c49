"""Each known breakage of the pinned stack, fixed by mmal.compat, exercised for real."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TOY_SSD_CONFIG, toy_ssd_cfg
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import Runner


def _predict(model, images: torch.Tensor):
    samples = [DetDataSample(metainfo=dict(img_shape=tuple(img.shape[1:]), ori_shape=tuple(img.shape[1:]),
                                           scale_factor=(1.0, 1.0))) for img in images]
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), False)
    with torch.no_grad():
        return model(**data, mode='predict')


def test_toy_ssd_predicts():
    model = MODELS.build(Config.fromfile(TOY_SSD_CONFIG).model)
    model.init_weights()
    model.eval()
    results = _predict(model, torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8))
    assert len(results) == 2
    for res in results:
        boxes, scores = res.pred_instances.bboxes, res.pred_instances.scores
        assert boxes.shape[1] == 4 and boxes.shape[0] == scores.shape[0] <= 100
        assert ((scores >= 0) & (scores <= 1)).all()


def test_real_ssd300_voc_config_builds_and_predicts():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ssd300_voc0712.py'))
    assert cfg.model.backbone.type == 'SSDVGG' and cfg.model.bbox_head.num_classes == 20
    assert cfg.model.backbone.init_cfg.checkpoint == 'open-mmlab://vgg16_caffe'  # kept for real runs
    cfg.model.backbone.init_cfg = None  # random weights: no download in tests
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    torch.manual_seed(0)
    [res] = _predict(model, torch.randint(0, 256, (1, 3, 300, 300), dtype=torch.uint8))
    assert res.pred_instances.bboxes.shape[1] == 4
    assert len(res.pred_instances) <= cfg.model.test_cfg.max_per_img


def test_save_resume_continue(toy_voc_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    first = Runner.from_cfg(toy_ssd_cfg(toy_voc_root, work_dir, epochs=1))
    first.train()
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    # torch >= 2.6 refuses mmengine's full checkpoints by default (without mmal): the bug being fixed.
    plain = subprocess.run([sys.executable, '-c', f'import torch; torch.load({ckpt!r}, weights_only=True)'],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and 'Weights only load failed' in plain.stderr

    first_ckpt_bytes = open(ckpt, 'rb').read()

    cfg = toy_ssd_cfg(toy_voc_root, work_dir, epochs=2)
    cfg.resume = True
    second = Runner.from_cfg(cfg)
    second.train()
    # It continued: epoch 1 was not trained (nor saved) again, epoch 2 was.
    assert open(ckpt, 'rb').read() == first_ckpt_bytes
    assert second.epoch == 2 and osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
    assert second.iter == 2 * len(second.train_dataloader)

    # load_from a full checkpoint (weights only, fresh schedule) works as well.
    cfg = toy_ssd_cfg(toy_voc_root, str(tmp_path / 'finetune'), epochs=1)
    cfg.load_from = ckpt
    third = Runner.from_cfg(cfg)
    third.train()
    assert third.epoch == 1


@pytest.mark.parametrize('config', ['configs/ssd300_voc0712.py', 'configs/demo/ssd_toyvoc.py'])
def test_mmdet_bases_resolve_with_plain_mmengine(config):
    """mmengine resolves ``mmdet::`` bases through pkg_resources: the pinned setuptools (< 82) ships it,
    so no shim is needed (and none is installed)."""
    code = f'from mmengine.config import Config; print(Config.fromfile({config!r}).model.type)'
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith('SingleStageDetector')


_FIXED_UPSTREAM = '''
import torch
from mmdet.models.dense_heads import SSDHead
from mmengine.runner.checkpoint import CheckpointLoader

original = SSDHead.__init__
def fixed_init(self, *args, **kwargs):  # as upstream would: the head sets self.loss_cls itself
    original(self, *args, **kwargs)
    self.loss_cls = None
SSDHead.__init__ = fixed_init

def fixed_loader(filename, map_location=None):  # as upstream would: a loader that reads its own files
    return torch.load(filename, map_location=map_location, weights_only=False)
CheckpointLoader.register_scheme(prefixes='', loader=fixed_loader, force=True)

import mmal  # noqa: F401  (applies mmal.compat)
print(SSDHead.__init__ is fixed_init, CheckpointLoader._schemes[''] is fixed_loader)
'''


def test_every_fix_is_a_no_op_where_the_bug_is_absent(tmp_path):
    script = tmp_path / 'fixed_upstream.py'  # a file, so that the fixed __init__'s source can be read
    script.write_text(_FIXED_UPSTREAM)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ['True', 'True']


def test_every_fix_is_needed_on_the_pinned_stack():
    from mmdet.models.dense_heads import SSDHead
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmal import compat

    assert getattr(SSDHead.__init__, '_mmal_fixed', False)  # mmdetection#11780 is present in mmdet 3.3.0
    assert getattr(CheckpointLoader._schemes[''], '_mmal_fixed', False)  # mmengine#1655 with torch 2.13
    assert compat.fix_ssd_head() and compat.fix_local_checkpoint_loading()  # applying again keeps them


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_gloo_training(toy_voc_root, tmp_path):
    work_dir = tmp_path / 'dist'
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
        '--master_port', str(_free_port()), osp.join(REPO, 'tools', 'train.py'), TOY_SSD_CONFIG,
        '--launcher', 'pytorch', '--work-dir', str(work_dir), '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_voc_root}', f'val_dataloader.dataset.data_root={toy_voc_root}',
        'train_dataloader.batch_size=4', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1', 'param_scheduler=[]'
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-12000:]
    assert osp.isfile(work_dir / 'epoch_1.pth')
    [log] = [p for p in work_dir.rglob('*.log')]
    text = log.read_text()
    assert 'Distributed training: True' in text and "'backend': 'gloo'" in text
    assert 'pascal_voc/mAP' in text  # evaluation gathered results from both ranks


_DESTROY_SCRIPT = '''
import gc, os, weakref
import torch
import torch.distributed as dist
from mmal import dist as mdist
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='{port}')
mdist.init_dist('pytorch', backend='gloo')
ddp = mdist.CPUFriendlyDDP(torch.nn.Linear(2, 2))
ddp.cycle = ddp  # a finished runner keeps its DDP wrapper alive in reference cycles like this one
alive = weakref.ref(ddp)
del ddp
mdist.destroy_dist()
print('initialized', dist.is_initialized(), 'ddp alive', alive() is not None)
'''


def test_destroy_dist_frees_the_ddp_wrapper_before_the_group():
    """At exit the group must go with the DDP wrapper that holds it, not in interpreter shutdown."""
    proc = subprocess.run([sys.executable, '-c', _DESTROY_SCRIPT.format(port=_free_port())], cwd=REPO,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=''), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'initialized False ddp alive False' in proc.stdout
