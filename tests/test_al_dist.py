"""Two CPU processes (gloo): sharded acquisition equals one process; a full 2-process AL run."""
import json
import os
import shutil

from conftest import al_train, dist_train, indices, labeled_sets, scores, write_config


def test_sharded_acquisition_selects_what_one_process_selects(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, batch_size=3)
    single = tmp_path / 'single'
    al_train(config, single)
    # Same checkpoint, scored again by two processes: keep cycle 0's model and metrics, drop its selection.
    sharded = tmp_path / 'sharded'
    shutil.copytree(single, sharded)
    (sharded / 'trial_0' / 'cycle_0' / 'selected.json').unlink()
    shutil.rmtree(sharded / 'trial_0' / 'cycle_1')
    dist_train(config, sharded, '--resume')
    one = json.loads((single / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    two = json.loads((sharded / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert indices(two) == indices(one)
    assert max(abs(a - b) for a, b in zip(scores(two), scores(one))) < 1e-5


def test_full_two_process_run(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=3)
    work = tmp_path / 'dist'
    proc = dist_train(config, work)
    assert proc.stdout.count('[al] trial 0 cycle 2: 20 labeled') == 1  # rank 0 reports, once
    sets = labeled_sets(work)
    assert [len(s) for s in sets] == [8, 14, 20] and all(len(set(s)) == len(s) for s in sets)
    for k in range(2):
        selected = json.loads((work / 'trial_0' / f'cycle_{k}' / 'selected.json').read_text())
        assert not set(indices(selected)) & set(sets[k]) and len(set(indices(selected))) == 6
    # rank 0 only
    assert sorted(os.listdir(work)) == ['al.log', 'al_config.json', 'report', 'results.csv', 'trial_0', 'vis_data']
    assert sorted(os.listdir(work / 'trial_0' / 'cycle_0')) == [
        'labeled.json', 'metrics.json', 'model.pth', 'selected.json', 'train']
