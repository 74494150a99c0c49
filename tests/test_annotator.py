"""Simulated annotators (mmal.active.annotator): NoisyAnnotator's errors are drawn as configured,
recorded exactly, the same for an image whichever cycle buys it, and the driver trains on them."""
import json
import random

import pytest
from conftest import al_train, write_config

from mmal.active.annotator import ExactAnnotator, NoisyAnnotator, iou, shifted
from mmal.errors import UserError

INFO = dict(width=200, height=100, instances=[
    dict(bbox=[10.0 + 4 * k, 10.0, 50.0 + 4 * k, 60.0], bbox_label=k % 3, ignore_flag=0) for k in range(30)]
    + [dict(bbox=[0.0, 0.0, 20.0, 20.0], bbox_label=1, ignore_flag=1)])


def test_errors_are_drawn_as_configured_and_recorded_exactly():
    annotator = NoisyAnnotator(drop=0.2, swap=0.2, shift=0.2, shift_iou=0.6, seed=3)
    kinds = {'drop': 0, 'swap': 0, 'shift': 0}
    for index in range(200):
        out, changes = annotator.annotate(index, INFO, num_classes=3)
        assert out[-1] == INFO['instances'][-1]  # an ignored box is kept as it is
        assert len(out) == len(INFO['instances']) - sum(c['kind'] == 'drop' for c in changes)
        assert len({c['box'] for c in changes}) == len(changes)  # at most one error a box
        for change in changes:
            kinds[change['kind']] += 1
            truth = INFO['instances'][change['box']]
            assert change['before'] == dict(bbox=truth['bbox'], bbox_label=truth['bbox_label'])
            if change['kind'] == 'swap':
                assert change['after']['bbox_label'] != truth['bbox_label'] and change['after']['bbox'] == truth['bbox']
                assert change['after'] in [dict(bbox=o['bbox'], bbox_label=o['bbox_label']) for o in out]
            if change['kind'] == 'shift':
                assert change['iou'] == pytest.approx(0.6, abs=1e-6)
                assert change['after']['bbox_label'] == truth['bbox_label']
        again = annotator.annotate(index, INFO, num_classes=3)
        assert again == (out, changes)  # drawn from (seed, index) alone
    total = 200 * 30
    for kind, count in kinds.items():
        assert abs(count / total - 0.2) < 0.03, (kind, count)
    assert ExactAnnotator().annotate(0, INFO, 3) == (INFO['instances'], [])


def test_a_shift_stays_inside_the_image_where_it_can():
    rng = random.Random(0)
    for _ in range(500):
        box = [rng.uniform(0, 150), rng.uniform(0, 60), 0, 0]
        box[2], box[3] = box[0] + rng.uniform(5, 50), box[1] + rng.uniform(5, 40)
        moved = shifted(box, 0.5, (200, 100), rng)
        assert moved[0] >= 0 and moved[1] >= 0 and moved[2] <= 200 and moved[3] <= 100
        if box[2] - box[0] < 60 and box[3] - box[1] < 30:  # small enough to move either way inside
            assert iou(box, moved) == pytest.approx(0.5)


@pytest.mark.parametrize('args, words', [
    (dict(drop=1.5), 'drop must be a probability in [0, 1]'),
    (dict(drop=0.5, swap=0.4, shift=0.2), 'must sum to at most 1'),
    (dict(shift_iou=1.0), 'shift_iou must lie in (0, 1)'),
])
def test_bad_settings_are_one_sentence(args, words):
    with pytest.raises(UserError, match=words.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')):
        NoisyAnnotator(**args)


def test_the_driver_trains_on_what_the_annotator_returned(toy_voc_root, tmp_path):
    from mmengine.config import Config

    from mmal.datasets.annotations import Relabeled
    from mmal.datasets.errors import build_dataset
    noisy = dict(type='NoisyAnnotator', drop=0.2, swap=0.2, shift=0.2, seed=1)
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, annotator=noisy)
    work = tmp_path / 'w'
    proc = al_train(config, work)
    assert '[al] trial 0 cycle 1: the annotator changed' in proc.stdout
    records = [json.loads((work / 'trial_0' / f'cycle_{k}' / 'annotations.json').read_text()) for k in (0, 1)]
    labeled = [json.loads((work / 'trial_0' / f'cycle_{k}' / 'labeled.json').read_text())['indices'] for k in (0, 1)]
    assert [r['annotated'] for r in records] == labeled
    assert records[1]['changes'][:len(records[0]['changes'])] == records[0]['changes']  # earlier labels kept
    assert {c['kind'] for c in records[1]['changes']} == {'drop', 'swap', 'shift'}
    cfg = Config.fromfile(config)
    pool = build_dataset(cfg.train_dataloader.dataset.to_dict())
    relabeled = Relabeled(pool, str(work / 'trial_0' / 'cycle_1' / 'annotations.json'))
    annotator = NoisyAnnotator(**{k: v for k, v in noisy.items() if k != 'type'})
    for index in labeled[1]:
        expected, _ = annotator.annotate(index, pool.get_data_info(index), len(pool.metainfo['classes']))
        assert relabeled.get_data_info(index)['instances'] == expected
    # the cycle's training read the relabeled pool
    dumped = (work / 'trial_0' / 'cycle_1' / 'train' / 'al.py').read_text()  # the config the cycle ran
    assert "type='Relabeled'" in dumped and 'cycle_1/annotations.json' in dumped


def test_an_unknown_annotator_is_one_sentence(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, annotator=dict(type='Sloppy'))
    proc = al_train(config, tmp_path / 'w', check=False)
    assert proc.returncode == 2 and 'active_learning.annotator must be an annotator config' in proc.stderr
    assert not (tmp_path / 'w').exists()
