"""ActiveLearningHook under plain training scripts (mmdet's own tools/train.py and ours): the shipped
example selects its budget from images it did not train on, and a refused combination is one
sentence and a non-zero exit before the first training iteration."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmdet
import pytest
from conftest import REPO

EXAMPLE = osp.join(REPO, 'configs', 'examples', 'retinanet_r18_toyvoc_al.py')
MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
OURS = osp.join(REPO, 'tools', 'train.py')


def train(script, toy_voc_root, work_dir, *options):
    pool = osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'trainval.txt')
    data = [f'{loader}.dataset.data_root={toy_voc_root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                        'test_dataloader')]
    argv = [sys.executable, script, EXAMPLE, '--work-dir', str(work_dir), '--cfg-options', *data,
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'train_dataloader.batch_size=8',
            'train_dataloader.dataset.indices=20', f'custom_hooks.0.pool={pool}', 'custom_hooks.0.budget=5',
            'custom_hooks.0.progress=False', 'log_level=WARNING', *options]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'PYTHONWARNINGS': 'ignore'})


@pytest.mark.skipif(not osp.isfile(MMDET_TRAIN), reason="mmdet's tools/train.py is not installed with mmdet")
def test_example_selects_its_budget_under_mmdets_own_train_script(toy_voc_root, tmp_path):
    proc = train(MMDET_TRAIN, toy_voc_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / 'acquisition.json').read_text())
    with open(osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'trainval.txt')) as f:
        listed = f.read().split()
    trained = set(listed[:20])
    assert result['pool_size'] == 40 and result['in_training_set'] == 20
    assert len(result['selected']) == 5 and not {p['img_id'] for p in result['selected']} & trained


@pytest.mark.parametrize('script', [MMDET_TRAIN, OURS], ids=['mmdet', 'mmal'])
def test_a_refused_combination_is_one_sentence_before_training(script, toy_voc_root, tmp_path):
    if not osp.isfile(script):
        pytest.skip("mmdet's tools/train.py is not installed with mmdet")
    proc = train(script, toy_voc_root, tmp_path, 'custom_hooks.0.scorer.type=Inconsistency')
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert errors == ['error: Inconsistency cannot score RetinaNet: DetectionAdapter on RetinaNet cannot compute '
                      "['aug_probs']; it provides ['box_stability', 'boxes', 'class_quality', 'features', "
                      "'flip_log_probs', 'labels', 'last_layer_input', 'log_probs', 'mc_probs', 'probs', "
                      "'proposal_iou', 'scores']; for detection use the Consistency scorer (symmetric KL under a "
                      "horizontal flip, CSD's inconsistency)."]
    assert 'Traceback' not in proc.stderr
    assert not list(tmp_path.glob('*.pth'))  # not one epoch trained


def test_a_pool_that_is_the_training_list_is_refused(toy_voc_root, tmp_path):
    proc = train(OURS, toy_voc_root, tmp_path, 'train_dataloader.dataset.indices=40')
    assert proc.returncode == 2
    assert ('error: ActiveLearningHook: all 40 pool images are in the training set, so there is nothing to select; '
            'point pool at the images that are not labeled yet') in proc.stderr
