"""Two CPU processes (gloo): sharded acquisition equals one process; a full 2-process AL run; two
"nodes" (two torchrun launchers) and Slurm (a stand-in srun) decide what one node does."""
import json
import os
import shutil
import socket
import subprocess

import pytest
from conftest import REPO, al_train, dist_train, indices, labeled_sets, scores, write_config


@pytest.mark.parametrize('method', [dict(scorer=dict(type='Entropy')),  # a distributed top-k
                                    dict(scorer=None, selection=dict(type='KCenterGreedy')),  # distributed k-center
                                    dict(scorer=None, selection=dict(type='BADGE'))])  # gathered on rank 0
def test_sharded_acquisition_selects_what_one_process_selects(toy_voc_root, tmp_path, method):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, batch_size=3, **method)
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
    if method.get('scorer'):
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _outcome(work) -> tuple:
    """What a run decided: every cycle's labeled set and picks."""
    picks = [indices(json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text()))]
    return labeled_sets(work, cycles=2), picks


@pytest.fixture(scope='module')
def two_processes(toy_voc_root, tmp_path_factory):
    """A 2-cycle run of two processes on one node: (config, its outcome)."""
    tmp = tmp_path_factory.mktemp('two')
    config = write_config(tmp, toy_voc_root, num_cycles=2)
    dist_train(config, tmp / 'one_node')
    return config, _outcome(tmp / 'one_node')


def test_two_nodes_of_one_process_each_decide_what_one_node_of_two_does(two_processes, tmp_path):
    config, expected = two_processes
    port, work = _free_port(), tmp_path / 'two_nodes'
    nodes = []
    for node in range(2):  # two launchers, as two machines would run them, meeting at MASTER_ADDR:PORT
        env = dict(os.environ, NNODES='2', NODE_RANK=str(node), MASTER_ADDR='127.0.0.1', PORT=str(port),
                   OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
        nodes.append(subprocess.Popen(['bash', 'tools/dist_train.sh', config, '1', '--work-dir', str(work),
                                       '--no-progress'], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in nodes:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    assert _outcome(work) == expected


STUB_SRUN = r'''#!/usr/bin/env bash
# A stand-in for Slurm's srun on one machine: starts --ntasks copies of the command with the SLURM_*
# variables a real srun sets, and fails when one of them fails.
ntasks=1; per_node=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ntasks=*) ntasks=${1#*=} ;;
    --ntasks-per-node=*) per_node=${1#*=} ;;
    -p|-J) shift ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
echo "$@" > "$SRUN_LOG"
pids=()
for ((r = 0; r < ntasks; r++)); do
  SLURM_PROCID=$r SLURM_NTASKS=$ntasks SLURM_LOCALID=$((r % per_node)) SLURM_NODELIST=localhost "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''


def test_slurm_train_runs_the_driver_as_srun_tasks(two_processes, tmp_path):
    config, expected = two_processes
    stub = tmp_path / 'bin' / 'srun'
    stub.parent.mkdir()
    stub.write_text(STUB_SRUN)
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f'{stub.parent}:{os.environ["PATH"]}', GPUS='2', MASTER_PORT=str(_free_port()),
               SRUN_LOG=str(tmp_path / 'srun.log'), OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    work = tmp_path / 'slurm'
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'al', config, str(work), '--no-progress'], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '--launcher=slurm' in (tmp_path / 'srun.log').read_text()
    assert _outcome(work) == expected


def test_slurm_variables_become_torchrun_variables():
    from mmal.dist import first_host, slurm_env
    from mmal.errors import UserError
    env = slurm_env(dict(SLURM_PROCID='3', SLURM_NTASKS='8', SLURM_LOCALID='1', SLURM_NODELIST='gpu[07-08],cpu1'))
    assert env == dict(RANK='3', WORLD_SIZE='8', LOCAL_RANK='1', MASTER_ADDR=first_host('gpu[07-08],cpu1'),
                       MASTER_PORT='29500')
    assert first_host('node[01-04,07]') in ('node01', 'node[01-04,07]'.split('[')[0] + '01')
    assert first_host('localhost') == 'localhost'
    with pytest.raises(UserError, match='SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST missing'):
        slurm_env({})
