"""A short al_train.py run and an ActiveLearningHook run for a two-stage, an anchor-free and a
DETR-type detector (configs/examples: mmdet's own configs on the toy VOC set)."""
import json
import os.path as osp
import subprocess
import sys
import types

import pytest
from conftest import REPO, al_train, indices, labeled_sets
from mmengine.config import Config
from mmengine.hooks import EMAHook
from mmengine.runner import Runner

from mmal.engine import scoring_model
from mmal.errors import UserError

EXAMPLES = {
    'faster-rcnn': dict(scorer=dict(type='Entropy')),
    'fcos': dict(scorer=dict(type='Margin')),
    'deformable-detr': dict(selection=dict(type='BADGE')),
}
#: Narrower versions of the examples' models, so a run takes seconds on 2 cores.
SMALL_MODELS = {
    'faster-rcnn': dict(
        neck=dict(out_channels=64), rpn_head=dict(in_channels=64, feat_channels=64),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=64), bbox_head=dict(in_channels=64, fc_out_channels=128)),
        train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100), rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50))),
    'fcos': dict(neck=dict(out_channels=64), bbox_head=dict(in_channels=64, feat_channels=64)),
    'deformable-detr': dict(num_queries=50, encoder=dict(num_layers=1), decoder=dict(num_layers=1)),
}


def example(name):
    return osp.join(REPO, 'configs', 'examples', f'{name}_r18_toyvoc_al.py')


def small_config(tmp_path, name, data_root, **al):
    """The example at a test's size: 2 iterations a cycle, 8 labeled + 6 per cycle, 2 cycles."""
    settings = dict(initial_labeled=8, budget=6, num_cycles=2, batch_size=8, **al)
    path = tmp_path / f'{name}.py'
    path.write_text(f'''
_base_ = {example(name)!r}
data_root = {data_root!r}
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
model = {SMALL_MODELS[name]!r}
max_iters = 2
train_cfg = dict(max_iters=max_iters, val_interval=1000)  # the driver tests each cycle's model itself
default_hooks = dict(checkpoint=dict(interval=max_iters))
log_level = 'WARNING'
active_learning = dict(_delete_=True, metric='pascal_voc/mAP', **{settings!r})
''')
    return str(path)


@pytest.mark.parametrize('name', list(EXAMPLES))
def test_al_train_runs_every_family(toy_voc_root, tmp_path, name):
    config = small_config(tmp_path, name, toy_voc_root, **EXAMPLES[name])
    proc = al_train(config, tmp_path / 'w')
    assert '[al] trial 0 cycle 1: 14 labeled' in proc.stdout
    sets = labeled_sets(tmp_path / 'w', cycles=2)
    selected = json.loads((tmp_path / 'w' / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert len(indices(selected)) == 6 and not set(indices(selected)) & set(sets[0])
    assert sorted(sets[0] + indices(selected)) == sets[1]


@pytest.mark.parametrize('name', list(EXAMPLES))
def test_hook_never_scores_training_images(toy_voc_root, tmp_path, name):
    main = osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main')
    pool = osp.join(main, 'trainval_and_test.txt')  # the training images and the 16 test images together
    with open(pool, 'w') as f:
        f.write(open(osp.join(main, 'trainval.txt')).read() + open(osp.join(main, 'test.txt')).read())
    cfg = Config.fromfile(small_config(tmp_path, name, toy_voc_root, **EXAMPLES[name]))
    cfg.pop('active_learning')
    cfg.work_dir = str(tmp_path / 'w')
    cfg.custom_hooks = [dict(type='ActiveLearningHook', pool=pool, budget=5, progress=False,
                             **EXAMPLES[name])]
    Runner.from_cfg(cfg).train()
    result = json.loads((tmp_path / 'w' / 'acquisition.json').read_text())
    assert result['in_training_set'] == 40 and result['pool_size'] == 56
    assert len(result['selected']) == 5 and all(p['img_id'].startswith('test_') for p in result['selected'])


def test_hook_fails_before_training_on_a_method_the_detector_cannot_give(toy_voc_root, tmp_path):
    cfg = Config.fromfile(small_config(tmp_path, 'faster-rcnn', toy_voc_root))
    cfg.pop('active_learning')
    cfg.work_dir = str(tmp_path / 'w')
    cfg.custom_hooks = [dict(type='ActiveLearningHook', pool=toy_voc_root, budget=5,
                             scorer=dict(type='Inconsistency'))]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UserError, match=r"Inconsistency cannot score FasterRCNN: .*cannot compute \['aug_probs'\].*"
                                        'for detection use the Consistency scorer'):
        runner.train()
    assert runner.iter == 0  # not one training iteration


def test_al_train_fails_before_training_on_a_bad_method(toy_voc_root, tmp_path):
    config = small_config(tmp_path, 'fcos', toy_voc_root, scorer=dict(type='LossPrediction'))
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'al_train.py'), config, '--work-dir',
                           str(tmp_path / 'w'), '--no-progress'], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert "LossPrediction cannot score FCOS" in proc.stderr and "use an LLAL detector" in proc.stderr
    assert not (tmp_path / 'w').exists()


def test_the_hook_scores_the_ema_weights_when_the_run_keeps_them():
    model, averaged = object(), types.SimpleNamespace(module=object())
    ema = EMAHook()
    ema.ema_model = averaged
    assert scoring_model(types.SimpleNamespace(hooks=[ema], model=model)) is averaged.module
    assert scoring_model(types.SimpleNamespace(hooks=[], model=model)) is model
