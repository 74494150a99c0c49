"""Interruptions at any point: Ctrl-C ends the run within seconds with the resume command, SIGKILL at
any write loses nothing a resume cannot re-derive. Slow (each case is a real al_train process)."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from conftest import AL_TRAIN, REPO, al_train, write_config

#: Runs al_train in a process that SIGKILLs itself right after its N-th write (a committed file or a
#: logged scalar), exactly as a power cut after that write would leave the work dir.
KILL_AFTER = '''
import os, signal, sys
sys.argv = [sys.argv[0]] + sys.argv[2:]
limit, count = int(os.environ['KILL_AFTER']), [0]

def counted(fn, only=lambda *args: True):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if not only(*args):
            return out
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapper

import mmal.active.loop as loop
import mmal.fileio as fileio
from mmengine.visualization import LocalVisBackend
fileio.commit = loop.commit = counted(fileio.commit)
# the driver's scalars (not those each training logs in its own folder)
LocalVisBackend.add_scalars = counted(LocalVisBackend.add_scalars, lambda backend, *_: 'train' not in backend._save_dir)
sys.path.insert(0, os.path.join(os.getcwd(), 'tools'))
import al_train
sys.exit(al_train.main())
'''


def _files(work) -> dict:
    """The run's outcome: every state file, the results table and the logged scalars."""
    out = {}
    for root, _, files in os.walk(work):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), work)
            if 'train' in rel.split(os.sep):
                continue  # mmengine's own files of each training, with times in them
            if name in ('labeled.json', 'selected.json', 'metrics.json', 'results.csv', 'scalars.json'):
                with open(os.path.join(root, name)) as f:
                    out[rel] = f.read()
    return out


@pytest.mark.slow
def test_a_kill_after_any_write_of_a_cycle_loses_nothing(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    al_train(config, tmp_path / 'reference')
    expected = _files(tmp_path / 'reference')
    killed_at = 0
    for limit in range(1, 40):
        work = tmp_path / f'w{limit}'
        proc = subprocess.run([sys.executable, '-c', KILL_AFTER, AL_TRAIN, config, '--work-dir', str(work),
                               '--no-progress'], cwd=REPO, capture_output=True, text=True, timeout=600,
                              env={**os.environ, 'KILL_AFTER': str(limit)})
        if proc.returncode == 0:
            break  # the run has fewer writes than this: every point was tried
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        killed_at = limit
        al_train(config, work, '--resume')
        assert _files(work) == expected, f'killed after write {limit}'
    assert killed_at >= 12  # labeled, model, metrics, scalars, marker, results, selected; twice


@pytest.mark.slow
def test_ctrl_c_twenty_times_at_any_point_ends_the_run_within_seconds(toy_voc_root, tmp_path):
    """Ctrl-C as a terminal sends it: to the whole process group, so mmdet's VOC evaluation workers
    get it too. Points spread over the run, a third of them right as the test evaluation starts."""
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    work = tmp_path / 'a work dir'  # (a space: the printed resume command must be quoted)
    resume = shlex.join(['python', 'tools/al_train.py', config, '--work-dir', str(work), '--resume'])
    for attempt in range(20):
        if work.exists():
            import shutil
            shutil.rmtree(work)
        proc = subprocess.Popen([sys.executable, AL_TRAIN, config, '--work-dir', str(work), '--no-progress'],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        start = time.time()
        if attempt == 0:
            time.sleep(0.3)  # during the imports
        elif attempt % 3 == 0:  # as the first model is tested (mmdet's evaluation pool)
            while not (work / 'trial_0' / 'cycle_0' / 'model.pth').exists() and proc.poll() is None:
                time.sleep(0.005)
        else:
            time.sleep(2 + 0.5 * attempt)
        if proc.poll() is not None:
            continue
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.time()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f'attempt {attempt}: the run did not end within 30 s of Ctrl-C')
        assert time.time() - sent < 15, f'attempt {attempt}: {time.time() - sent:.1f} s'
        assert 'Traceback' not in err, f'attempt {attempt} (after {sent - start:.1f} s): {err[-3000:]}'
        if proc.returncode == -signal.SIGINT:  # still importing: ends quietly
            continue
        assert proc.returncode == 130, f'attempt {attempt}: exit {proc.returncode}: {err[-2000:]}'
        if work.exists():
            assert err.strip().splitlines()[-1] == ('interrupted; every finished step is kept: continue with '
                                                    f'{resume}'), err[-1000:]
