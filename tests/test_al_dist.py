"""Two CPU processes (gloo): sharded acquisition equals one process; a full 2-process AL run."""
import json
import os
import shutil
import socket
import subprocess

from conftest import REPO
from test_al_driver import al_train, labeled_sets, write_config


def dist_train(config, work_dir, *extra):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PORT=str(port), OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir), '--no-progress',
                           *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


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
    assert two['indices'] == one['indices']
    assert max(abs(a - b) for a, b in zip(two['scores'], one['scores'])) < 1e-5


def test_full_two_process_run(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=3)
    work = tmp_path / 'dist'
    proc = dist_train(config, work)
    assert proc.stdout.count('[al] trial 0 cycle 2: 20 labeled') == 1  # rank 0 reports, once
    sets = labeled_sets(work)
    assert [len(s) for s in sets] == [8, 14, 20] and all(len(set(s)) == len(s) for s in sets)
    for k in range(2):
        selected = json.loads((work / 'trial_0' / f'cycle_{k}' / 'selected.json').read_text())
        assert not set(selected['indices']) & set(sets[k]) and len(set(selected['indices'])) == 6
    assert sorted(os.listdir(work)) == ['al_config.json', 'report', 'results.csv', 'trial_0', 'vis_data']  # rank 0 only
    assert sorted(os.listdir(work / 'trial_0' / 'cycle_0')) == [
        'labeled.json', 'metrics.json', 'model.pth', 'selected.json', 'train']
