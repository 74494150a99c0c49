"""A random control share of each batch (active_learning.control_fraction) and the estimate of the
picking model's quality on the pool that its returned labels give (mmal/scoring/estimate.py,
mmal/active/control.py)."""
import csv

import pytest
import torch
from conftest import al_train
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from test_classification import tiny_classifier, write_cls_config

from mmal.active.settings import ALSettings
from mmal.datasets.toy_cls import write_toy_cifar
from mmal.engine.acquisition import AcquisitionSpec, acquire
from mmal.engine.method import build_method
from mmal.errors import UserError
from mmal.scoring.estimate import accuracy_estimate, labels_as_detections, map_estimate

register_all_modules()


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    return write_toy_cifar(str(tmp_path_factory.mktemp('control') / 'cifar'), 10, train_per_class=8,
                           test_per_class=2, seed=6)


def test_wilson_interval_of_an_accuracy():
    half = accuracy_estimate(torch.tensor([True, False] * 50))
    assert (half.value, round(half.low, 3), round(half.high, 3), half.n) == (0.5, 0.404, 0.596, 100)
    perfect = accuracy_estimate(torch.ones(20, dtype=torch.bool))
    assert perfect.value == 1.0 and perfect.high == 1.0 and 0.83 < perfect.low < 0.84
    assert accuracy_estimate(torch.zeros(0, dtype=torch.bool)).n == 0


def test_map_estimate_and_its_bootstrap_interval():
    truth = [labels_as_detections([[0, 0, 10, 10]], [0]), labels_as_detections([[5, 5, 20, 20]], [1])]
    exact = [([[0, 0, 10, 10]], [0.9], [0]), ([[5, 5, 20, 20]], [0.8], [1])]
    assert map_estimate(truth, exact, 2) == map_estimate(truth, exact, 2, seed=3)
    assert (map_estimate(truth, exact, 2).value, map_estimate(truth, exact, 2).low) == (1.0, 1.0)
    one = labels_as_detections([[0, 0, 10, 10]], [0])
    hit, miss = ([[0, 0, 10, 10]], [0.9], [0]), ([[50, 50, 60, 60]], [0.8], [0])
    found = map_estimate([one] * 20, [hit, miss] * 10, 1)  # AP = the share of images found
    assert found.value == pytest.approx(0.5) and 0.2 < found.low < 0.5 < found.high < 0.8 and found.n == 20


def test_the_control_share_is_a_uniform_draw_the_method_never_sees(cifar_root):
    pool = DATASETS.build(dict(type='CIFAR10', data_root=cifar_root, split='train',
                               pipeline=[dict(type='PackClsInputs')]))
    model = tiny_classifier().eval()
    labeled = list(range(10))
    records = {}
    for scorer in ('Entropy', 'Margin'):
        spec = AcquisitionSpec(build_method(dict(type=scorer), None, seed=4), 10, control_fraction=0.3, progress=False)
        records[scorer] = acquire(spec, model, pool, labeled)
    entropy = records['Entropy']
    control = entropy.context['control']
    assert len(entropy.selected) == 10 and len(control) == 3 and control == entropy.indices[-3:]
    assert not set(entropy.indices) & set(labeled) and len(set(entropy.indices)) == 10
    assert [p.score for p in entropy.selected[-3:]] == [None] * 3 or all(
        p.score != p.score for p in entropy.selected[-3:])  # no score: drawn, not ranked
    assert records['Margin'].context['control'] == control  # the draw depends on the seed, not the method
    with pytest.raises(UserError, match='control_fraction must lie in \\[0, 1\\), got 1.0'):
        AcquisitionSpec(build_method(None, None), 10, control_fraction=1.0)
    with pytest.raises(UserError, match="control_fraction needs a budget in images"):
        AcquisitionSpec(build_method(None, None), 10, control_fraction=0.2, budget_unit='boxes')


def test_settings_check_control_fraction():
    cfg = Config(dict(active_learning=dict(initial_labeled=5, budget=5, num_cycles=2, control_fraction=-0.1)))
    with pytest.raises(UserError, match='active_learning.control_fraction must lie in \\[0, 1\\)'):
        ALSettings.from_cfg(cfg)


def test_driver_scores_the_picking_model_on_the_control_share(cifar_root, tmp_path):
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', budget=20, control_fraction=0.5)
    work = tmp_path / 'work'
    proc = al_train(config, work)
    rows = {r['metric']: float(r['value']) for r in csv.DictReader(open(work / 'results.csv')) if r['cycle'] == '0'}
    assert rows['control/num_images'] == 10
    assert 0 <= rows['control/accuracy_low'] <= rows['control/accuracy'] <= rows['control/accuracy_high'] <= 1
    assert 0 <= rows['control/active_accuracy'] <= 1
    assert 'on the random control share (10 images) the model scores accuracy' in proc.stdout + proc.stderr
