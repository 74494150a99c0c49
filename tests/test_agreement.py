"""The label-free agreement signal (mmal.scoring.agreement) and the stopping rule built on it."""
import pytest
import torch

from mmal.scoring.agreement import cohen_kappa, detection_agreement


def test_cohen_kappa():
    a = torch.tensor([0, 1, 2, 0, 1, 2])
    assert cohen_kappa(a, a, 3) == 1.0
    assert cohen_kappa(a, torch.tensor([1, 2, 0, 1, 2, 0]), 3) == pytest.approx(-0.5)
    # 3 of 6 agree; marginals 1/3 each: (1/2 - 1/3) / (1 - 1/3) = 0.25
    assert cohen_kappa(a, torch.tensor([0, 1, 2, 1, 2, 0]), 3) == pytest.approx(0.25)
    assert cohen_kappa(torch.zeros(4), torch.zeros(4), 3) == 1.0


IMAGE = ([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1])


def test_detection_agreement():
    assert detection_agreement([IMAGE], [IMAGE], 2) == 1.0
    moved = ([[0, 0, 10, 10], [30, 30, 50, 50]], [0.9, 0.8], [0, 1])  # class 1 found elsewhere (IoU 1/7)
    assert detection_agreement([IMAGE], [moved], 2) == pytest.approx(0.5)
    swapped = ([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [1, 0])
    assert detection_agreement([IMAGE], [swapped], 2) == 0.0
    extra = ([[0, 0, 10, 10], [20, 20, 40, 40], [60, 60, 70, 70]], [0.5, 0.8, 0.95], [0, 1, 0])
    # class 0: a false positive ranked above the hit: precision 1/2 at recall 1
    assert detection_agreement([IMAGE], [extra], 2) == pytest.approx((0.5 + 1.0) / 2)
    low = ([[0, 0, 10, 10]], [0.1], [0])  # below the reference threshold: not a label
    assert detection_agreement([low], [([], [], [])], 2) == 1.0
    assert detection_agreement([([], [], [])], [IMAGE], 2) == 0.0


def test_the_rule_fires_after_window_stable_cycles():
    from mmal.active.stopping import StopRule
    rule = StopRule(threshold=0.9, window=2)
    assert not rule.fires([None, 0.95])
    assert rule.fires([None, 0.95, 0.91]) and not rule.fires([None, 0.95, 0.89])
    assert rule.stop_indices(100, 3) == rule.stop_indices(100, 3) and len(rule.stop_indices(10, 3)) == 10


@pytest.mark.parametrize('stop, words', [
    (dict(threshold=0), 'stop.threshold must lie in (0, 1]'),
    (dict(window=0), 'stop.window must be an integer >= 1'),
    (dict(patience=2), "stop has unknown keys ['patience']"),
    (dict(end_trial='yes'), 'stop.end_trial must be True or False'),
])
def test_bad_rules_are_one_sentence(stop, words):
    from mmal.active.stopping import StopRule
    from mmal.errors import UserError
    with pytest.raises(UserError) as err:
        StopRule.from_cfg(stop)
    assert words in str(err.value)


def test_the_driver_records_the_signal_and_ends_a_trial_when_the_rule_fires(toy_voc_root, tmp_path):
    import csv
    import json

    from conftest import al_train, write_config
    watch = dict(threshold=1.0, window=1, stop_set=40, score_thr=0.0)
    first = tmp_path / 'watch'
    al_train(write_config(tmp_path, toy_voc_root, name='watch.py', stop=watch), first)
    with open(first / 'results.csv') as f:
        agreements = {int(r['cycle']): float(r['value']) for r in csv.DictReader(f) if r['metric'] == 'stop/agreement'}
    assert sorted(agreements) == [1, 2] and all(0 < a <= 1 for a in agreements.values())  # none in cycle 0
    stop_set = json.loads((first / 'trial_0' / 'cycle_0' / 'stop_predictions.json').read_text())
    assert stop_set['kind'] == 'boxes' and len(stop_set['images']) == 40
    # the same runs with the threshold at cycle 1's agreement: the rule fires there and ends the trial
    ends = dict(watch, threshold=agreements[1], end_trial=True)
    work = tmp_path / 'ends'
    proc = al_train(write_config(tmp_path, toy_voc_root, name='ends.py', stop=ends), work)
    assert '[al] trial 0: the stopping rule fires at cycle 1' in proc.stdout and 'the trial ends here' in proc.stdout
    assert json.loads((work / 'trial_0' / 'cycle_1' / 'stop.json').read_text())['cycle'] == 1
    assert not (work / 'trial_0' / 'cycle_1' / 'selected.json').exists() and not (work / 'trial_0' / 'cycle_2').exists()
