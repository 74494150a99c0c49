"""A random control share of each batch (active_learning.control_fraction), the estimates of the
picking model's quality on the pool that its returned labels give, and the gain over random of shadow
models (active_learning.gain_estimate) (mmal/scoring/estimate.py, mmal/active/control.py)."""
import csv
import json

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
from mmal.scoring import estimate as est
from mmal.scoring.agreement import detection_agreement
from mmal.scoring.estimate import accuracy_estimate, labels_as_detections, map_estimate, pool_accuracy

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


def test_the_pool_estimate_weights_the_picks_and_the_control_by_their_inclusion_probabilities():
    # 7 picks, all wrong; 3 control images, all right, drawn from the 63 left: (0 + 63 * 1) / 70
    exact = pool_accuracy(torch.zeros(7, dtype=torch.bool), torch.ones(3, dtype=torch.bool), 63)
    assert exact.value == pytest.approx(0.9) and exact.n == 70 and exact.low < 0.9 and exact.high == pytest.approx(0.9)
    # Unbiased over the draws, picks included; the control alone is not (it misses the hard images).
    generator = torch.Generator().manual_seed(0)
    correct = torch.rand(200, generator=generator) < torch.linspace(0.1, 0.95, 200)  # hard images first
    picks, rest = torch.arange(20), torch.arange(20, 200)
    pooled, alone = [], []
    for _ in range(3000):
        control = rest[torch.randperm(180, generator=generator)[:10]]
        pooled.append(pool_accuracy(correct[picks], correct[control], 180).value)
        alone.append(float(correct[control].float().mean()))
    truth = float(correct.float().mean())
    assert abs(sum(pooled) / len(pooled) - truth) < 0.005 < abs(sum(alone) / len(alone) - truth)


def test_weights_count_an_image_as_often_as_it_stands_for():
    found = labels_as_detections([[0, 0, 10, 10]], [0])
    hit, miss = ([[0, 0, 10, 10]], [0.9], [0]), ([[50, 50, 60, 60]], [0.8], [0])
    twice = detection_agreement([found, found, found], [hit, miss, miss], 1, score_thr=0.0)
    assert detection_agreement([found, found], [hit, miss], 1, score_thr=0.0, weights=[1, 2]) == pytest.approx(twice)
    assert est.stratum_weights(2, 3, 30) == [1, 1, 10, 10, 10]
    truth, boxes = [found] * 4, [miss, hit, hit, miss]  # picks: a miss; control: three images for 30 each
    estimate = est.pool_map(truth, boxes, 1, 30, 1)
    assert estimate.value == pytest.approx(detection_agreement(truth, boxes, 1, 0.0, weights=[1, 10, 10, 10]))
    assert estimate.low <= estimate.value <= estimate.high and estimate.n == 4
    same = est.weighted_accuracy([True, False, True], [1, 5, 5])
    assert same([0, 1, 2]) == pytest.approx(6 / 11)
    nothing = est.paired_difference(same, same, 1, 2)
    assert (nothing.value, nothing.low, nothing.high) == (0, 0, 0)
    better = est.paired_difference(est.weighted_accuracy([True] * 3, [1, 5, 5]), same, 1, 2)
    assert better.value == pytest.approx(5 / 11) and better.low <= better.value <= better.high


def test_the_gain_interval_is_newcombes_for_paired_accuracies():
    def pairs(both, only_first, only_second, neither):
        first = [True] * (both + only_first) + [False] * (only_second + neither)
        second = [True] * both + [False] * only_first + [True] * only_second + [False] * neither
        return torch.tensor(first), torch.tensor(second)
    gain = est.accuracy_gain(*pairs(36, 12, 2, 0), 0, 50)  # Newcombe (1998), method 10: 0.0569 to 0.3404
    assert (round(gain.value, 4), round(gain.low, 4), round(gain.high, 4)) == (0.2, 0.0569, 0.3404)
    agree = est.accuracy_gain(*pairs(25, 0, 0, 0), 0, 25)  # no discordant image: still an open interval
    assert agree.value == 0 and agree.low < -0.1 and agree.high > 0.1
    # 10 picks, the first model right on all and the second on none; control drawn from 90 images
    first, second = pairs(25, 0, 0, 0)
    pooled = est.accuracy_gain(torch.cat([torch.ones(10, dtype=torch.bool), first]),
                               torch.cat([torch.zeros(10, dtype=torch.bool), second]), 10, 90)
    assert pooled.value == pytest.approx(0.1) and pooled.n == 100
    assert pooled.low == pytest.approx(0.1 + 0.9 * agree.low) and pooled.high == pytest.approx(0.1 + 0.9 * agree.high)


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
    # The method picks first; the control is drawn from the images it left (70 unlabeled - 7 picks).
    alone = acquire(AcquisitionSpec(build_method(dict(type='Entropy'), None, seed=4), 7, progress=False), model, pool,
                    labeled)
    assert alone.indices == entropy.indices[:7] and entropy.context['control_stratum'] == len(pool) - 10 - 7
    with pytest.raises(UserError, match='control_fraction must lie in \\[0, 1\\), got 1.0'):
        AcquisitionSpec(build_method(None, None), 10, control_fraction=1.0)
    with pytest.raises(UserError, match="control_fraction needs a budget in images"):
        AcquisitionSpec(build_method(None, None), 10, control_fraction=0.2, budget_unit='boxes')


def test_settings_check_control_fraction():
    cfg = Config(dict(active_learning=dict(initial_labeled=5, budget=5, num_cycles=2, control_fraction=-0.1)))
    with pytest.raises(UserError, match='active_learning.control_fraction must lie in \\[0, 1\\)'):
        ALSettings.from_cfg(cfg)
    cfg = Config(dict(active_learning=dict(initial_labeled=5, budget=5, num_cycles=2, gain_estimate=True)))
    with pytest.raises(UserError, match='gain_estimate compares the picks with a random control share and there is '
                                        'none; set control_fraction'):
        ALSettings.from_cfg(cfg)


def test_driver_scores_the_picking_model_on_the_control_share(cifar_root, tmp_path):
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', budget=20, control_fraction=0.5)
    work = tmp_path / 'work'
    proc = al_train(config, work)
    rows = {r['metric']: float(r['value']) for r in csv.DictReader(open(work / 'results.csv')) if r['cycle'] == '0'}
    assert rows['control/num_images'] == 10
    assert 0 <= rows['control/accuracy_low'] <= rows['control/accuracy'] <= rows['control/accuracy_high'] <= 1
    assert 0 <= rows['control/active_accuracy'] <= 1
    assert rows['control/pool_accuracy_low'] <= rows['control/pool_accuracy'] <= rows['control/pool_accuracy_high']
    assert 'on the random control share (10 images) the model scores accuracy' in proc.stdout + proc.stderr
    assert 'on the whole unlabeled pool, estimated' in proc.stdout + proc.stderr


def test_driver_estimates_the_gain_over_random_with_shadow_models(cifar_root, tmp_path):
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', num_cycles=3, control_fraction=0.5, gain_estimate=True,
                              stop=dict(threshold=1.0, window=1, stop_set=20))
    work = tmp_path / 'work'
    proc = al_train(config, work)
    rows = {(r['cycle'], r['metric']): float(r['value']) for r in csv.DictReader(open(work / 'results.csv'))}
    assert ('0', 'gain/accuracy') not in rows and ('2', 'gain/accuracy') not in rows  # no batch before / after
    # the label-free accuracy estimate: the mean probability of the predicted class on the stop set
    predictions = json.loads((work / 'trial_0' / 'cycle_2' / 'stop_predictions.json').read_text())
    assert len(predictions['confidence']) == 20 and rows['2', 'stop/confidence'] == pytest.approx(
        sum(predictions['confidence'].values()) / 20) and 0.1 <= rows['2', 'stop/confidence'] <= 1
    assert -1 <= rows['1', 'gain/accuracy_low'] <= rows['1', 'gain/accuracy'] <= rows['1', 'gain/accuracy_high'] <= 1
    before = json.loads((work / 'trial_0' / 'cycle_0' / 'labeled.json').read_text())['indices']
    batch = json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    control = batch['control']
    picked = [p['index'] for p in batch['selected'] if p['index'] not in control]
    shadows = work / 'trial_0' / 'cycle_1' / 'gain'
    for name, added in (('picked', picked), ('random', control)):
        assert json.loads((shadows / name / 'labeled.json').read_text())['indices'] == sorted(before + added)
        assert 'accuracy/top1' in json.loads((shadows / name / 'metrics.json').read_text())['metrics']
    assert "the last batch's picks beat as many random images by" in proc.stdout + proc.stderr
