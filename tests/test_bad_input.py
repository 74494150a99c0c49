"""Bad input, concurrency and untrusted files: one sentence, exit code 2, and nothing on disk changed.

The tools run in-process here (``main(argv)`` returns the exit code), except where a signal or a
second process is the point.
"""
import json
import os
import os.path as osp
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import AL_TRAIN, REPO, al_train, fails, tool, write_config

from mmal.active.state import RunState
from mmal.datasets import ToyVOCSpec, generate_toy_voc
from mmal.datasets.toy_cls import write_toy_cifar
from mmal.report import Run, summarise

al_select, al_train_tool = tool('al_select'), tool('al_train')

MARKER = '/tmp/mmal_payload_ran'


class Payload:
    """Unpickling this runs a shell command (what a crafted checkpoint would do)."""

    def __reduce__(self):
        return os.system, (f'touch {MARKER}', )


@pytest.fixture
def toy_root(tmp_path):
    """A toy VOC set of this test's own (tests below damage it)."""
    return generate_toy_voc(str(tmp_path / 'toy'), ToyVOCSpec(num_trainval=40, num_test=16, seed=1))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A one-cycle run on the toy SSD: (config, checkpoint)."""
    tmp = tmp_path_factory.mktemp('trained')
    root = generate_toy_voc(str(tmp / 'toy'), ToyVOCSpec(num_trainval=40, num_test=16, seed=1))
    config = write_config(tmp, root, num_cycles=1)
    al_train(config, tmp / 'run')
    return config, str(tmp / 'run' / 'trial_0' / 'cycle_0' / 'model.pth'), root


# -- 1. no code execution from files ---------------------------------------------------------------
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(trained, tmp_path, capsys):
    config, ckpt, root = trained
    if osp.exists(MARKER):
        os.unlink(MARKER)
    crafted = tmp_path / 'model.pth'
    state = torch.load(ckpt, weights_only=False)
    state['meta']['note'] = Payload()
    torch.save(state, crafted)
    err = fails(al_select, [config, crafted, '--pool', root, '--budget', 2, '--out', tmp_path / 'o.json'], capsys,
                tmp_path)
    assert f'{crafted} was refused: it holds posix.system' in err and '--trust-checkpoint' in err
    assert not osp.exists(MARKER) and not (tmp_path / 'o.json').exists()


def test_trusting_a_checkpoint_is_explicit(trained, tmp_path, capsys):
    config, ckpt, root = trained
    odd = tmp_path / 'odd.pth'
    state = torch.load(ckpt, weights_only=False)
    state['meta']['when'] = __import__('datetime').date(2026, 1, 1)  # harmless, but not a weights type
    torch.save(state, odd)
    out = tmp_path / 'o.json'
    argv = [config, odd, '--pool', osp.join(root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt'), '--budget', 2,
            '--out', out]
    assert 'holds datetime.date' in fails(al_select, argv, capsys)
    assert al_select.main([str(a) for a in argv] + ['--trust-checkpoint']) == 0 and out.is_file()


def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(tmp_path, capsys):
    write_toy_cifar(str(tmp_path / 'cifar'), train_per_class=5, test_per_class=2)
    batch = tmp_path / 'cifar' / 'cifar-10-batches-py' / 'data_batch_1'
    with open(batch, 'wb') as f:
        pickle.dump({b'data': np.zeros((10, 3072), np.uint8), b'labels': [0] * 10, b'x': Payload()}, f, protocol=2)
    if osp.exists(MARKER):
        os.unlink(MARKER)
    config = tmp_path / 'cls.py'
    config.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'resnet_toycifar_al.py')!r}\n"
                      f"data_root = {str(tmp_path / 'cifar')!r}\n"
                      "train_dataloader = dict(dataset=dict(data_root=data_root))\n"
                      "test_dataloader = dict(dataset=dict(data_root=data_root))\n")
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert f'{batch} is not a CIFAR batch of arrays (posix.system is not allowed)' in err
    assert not osp.exists(MARKER) and not (tmp_path / 'w').exists()


# -- 2. no silent wrong answers --------------------------------------------------------------------
def test_a_checkpoint_of_another_model_or_class_count_is_an_error(trained, tmp_path, capsys):
    config, ckpt, root = trained
    pool = osp.join(root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt')
    other = tmp_path / 'three_classes.py'
    other.write_text(f'_base_ = {config!r}\nmodel = dict(bbox_head=dict(num_classes=3))\n')
    err = fails(al_select, [other, ckpt, '--pool', pool, '--budget', 2, '--out', tmp_path / 'o.csv'], capsys)
    assert "is not a checkpoint of this config's model (0 weights missing, 0 unexpected, 8 of another shape" in err
    retina = osp.join(REPO, 'configs', 'examples', 'retinanet_r18_toyvoc_al.py')
    err = fails(al_select, [retina, ckpt, '--pool', pool, '--budget', 2, '--out', tmp_path / 'o.csv', '--scorer',
                            'Entropy'], capsys)
    assert 'weights missing' in err and not (tmp_path / 'o.csv').exists()


def test_an_empty_pool_folder_is_an_error(trained, tmp_path, capsys):
    config, ckpt, _ = trained
    (tmp_path / 'empty').mkdir()
    err = fails(al_select, [config, ckpt, '--pool', tmp_path / 'empty', '--budget', 2, '--out', tmp_path / 'o.csv'],
                capsys, tmp_path)
    assert f'the image pool {tmp_path / "empty"} holds no images' in err


def test_a_pool_of_only_unreadable_images_is_an_error(trained, tmp_path, capsys):
    config, ckpt, _ = trained
    (tmp_path / 'bad').mkdir()
    for i in range(3):
        (tmp_path / 'bad' / f'{i}.jpg').write_bytes(b'not a jpeg')
    err = fails(al_select, [config, ckpt, '--pool', tmp_path / 'bad', '--budget', 2, '--out', tmp_path / 'o.csv'],
                capsys, tmp_path)
    assert 'none of the 3 candidate pool images could be read' in err


# -- 3. the work dir -------------------------------------------------------------------------------
def test_a_second_run_on_a_locked_work_dir_is_refused(toy_voc_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    work = tmp_path / 'w'
    work.mkdir()
    holder = RunState(str(work))
    holder.lock()  # a run in progress
    try:
        err = fails(al_train_tool, [config, '--work-dir', work, '--no-progress'], capsys, work)
    finally:
        holder.unlock()
    assert f'another run is using {work} right now' in err


def test_a_foreign_non_empty_work_dir_is_left_alone(toy_voc_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    work = tmp_path / 'theirs'
    (work / 'report').mkdir(parents=True)
    (work / 'results.csv').write_text('their,results\n')
    (work / 'report' / 'summary.md').write_text('# theirs\n')
    err = fails(al_train_tool, [config, '--work-dir', work], capsys, work)
    assert f'{work} is not empty and holds no mmal run' in err


def test_a_rejected_setting_records_nothing(toy_voc_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_voc_root, initial_labeled=100)
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert 'active_learning.initial_labeled=100 does not fit a pool of 40 images' in err
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('settings, message', [
    (dict(budget='10'), "active_learning.budget must be an integer >= 1, got '10'."),
    (dict(num_cycles=2.5), 'active_learning.num_cycles must be an integer >= 1, got 2.5.'),
    (dict(scorer='Entropy'), "active_learning.scorer must be a dict with a type, e.g. scorer=dict(type='Entropy')"),
    (dict(initial_labeled=1.5), 'initial_labeled must be a count >= 1 or a fraction in (0, 1), got 1.5.'),
    (dict(batch_size=0), 'active_learning.batch_size must be an integer >= 1, got 0.'),
    (dict(selection=dict(type='RandomSubsetTopK', subset_size=-5)), 'subset_size must be a positive integer'),
    (dict(scorer=dict(type='Entropy', aggregaton='max')), "unexpected keyword argument 'aggregaton'"),
    (dict(adapter=dict(box_mode='anchors', scor_thr=0.5)), "unexpected keyword argument 'scor_thr'"),
])
def test_wrong_types_and_typos_are_refused_before_training(toy_voc_root, tmp_path, capsys, settings, message):
    config = write_config(tmp_path, toy_voc_root, **settings)
    start = time.time()
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert message in err and not (tmp_path / 'w').exists() and time.time() - start < 60


def test_resume_names_what_changed_and_more_cycles_extend_the_run(toy_voc_root, tmp_path, capsys):
    work = tmp_path / 'w'
    al_train(write_config(tmp_path, toy_voc_root, num_cycles=1), work)
    changed = write_config(tmp_path, toy_voc_root, name='changed.py', num_cycles=1, budget=3, seed=1)
    err = fails(al_train_tool, [changed, '--work-dir', work, '--resume'], capsys, work)
    assert 'active_learning.budget, active_learning.seed differ' in err
    longer = write_config(tmp_path, toy_voc_root, name='longer.py', num_cycles=2)
    al_train(longer, work, '--resume')
    assert (work / 'trial_0' / 'cycle_1' / 'metrics.json').is_file()  # the run was extended by one cycle
    assert json.loads((work / 'al_config.json').read_text())['flat_config']['active_learning.num_cycles'] == '2'


def test_resume_removes_interrupted_temp_files_and_files_get_normal_permissions(toy_voc_root, tmp_path):
    work = tmp_path / 'w'
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    al_train(config, work)
    stale = work / 'trial_0' / 'cycle_0' / '.model.pth.x1y2.mmal.tmp'
    stale.write_bytes(b'half a checkpoint')
    proc = al_train(config, work, '--resume')
    assert not stale.exists() and f'removed {stale}' in proc.stdout
    mask = os.umask(0)
    os.umask(mask)
    for name in ('al_config.json', 'results.csv', 'trial_0/cycle_0/labeled.json', 'trial_0/cycle_0/model.pth'):
        assert stat.S_IMODE(os.stat(work / name).st_mode) == 0o666 & ~mask, name


# -- 5. data errors name the file ------------------------------------------------------------------
def test_a_malformed_annotation_names_the_file(toy_root, tmp_path, capsys):
    broken = osp.join(toy_root, 'ToyVOC', 'Annotations', 'trainval_000003.xml')
    with open(broken, 'w') as f:
        f.write('<annotation><object>')
    err = fails(al_train_tool, [write_config(tmp_path, toy_root), '--work-dir', tmp_path / 'w'], capsys)
    assert f'{broken} is not valid XML' in err and not (tmp_path / 'w').exists()


def test_an_unreadable_training_image_names_the_file(toy_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_root, initial_labeled=40, num_cycles=1)  # every image is trained on
    image = osp.join(toy_root, 'ToyVOC', 'JPEGImages', 'trainval_000005.jpg')
    with open(image, 'wb') as f:
        f.write(b'not a jpeg')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w', '--no-progress'], capsys)
    assert 'a training image of trial 0 cycle 0 cannot be read' in err and image in err and '--resume' in err


def test_damaged_state_files_name_the_file(toy_voc_root, tmp_path, capsys):
    work = tmp_path / 'w'
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    al_train(config, work)
    labeled = work / 'trial_0' / 'cycle_1' / 'labeled.json'
    labeled.write_text(labeled.read_text()[:20])
    assert f'{labeled} is damaged' in fails(al_train_tool, [config, '--work-dir', work, '--resume'], capsys, work)
    shutil.copy(work / 'trial_0' / 'cycle_0' / 'labeled.json', labeled)  # (any valid JSON will do to get past it)
    model = work / 'trial_0' / 'cycle_0' / 'model.pth'
    model.write_bytes(model.read_bytes()[:1000])
    err = fails(al_train_tool, [config, '--work-dir', work, '--resume'], capsys, work)
    assert f'{model} cannot be loaded' in err and 'retrain trial 0 cycle 0' in err


def test_a_config_with_a_syntax_error_names_the_file_and_line(tmp_path, capsys):
    config = tmp_path / 'broken.py'
    config.write_text("active_learning = dict(budget=10,\nscorer=dict(type='Entropy')\n")
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert f'config file {config} has a syntax error' in err and 'line' in err


def test_ctrl_c_says_how_to_resume(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root)
    work = tmp_path / 'w'
    proc = subprocess.Popen([sys.executable, AL_TRAIN, config, '--work-dir', str(work), '--no-progress'], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not (work / 'trial_0' / 'cycle_0' / 'labeled.json').exists():
        assert proc.poll() is None and time.time() - start < 300
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last == f'interrupted; every finished step is kept: continue with python tools/al_train.py {config} ' \
                   f'--work-dir {work} --resume'
    assert 'Traceback' not in err


# -- 6. a budget larger than the pool ----------------------------------------------------------------
def test_an_exhausted_pool_ends_the_trial_and_counts_it_once(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, initial_labeled=30, budget=50, num_cycles=4)
    proc = al_train(config, tmp_path / 'w')
    assert 'nothing is left to label after cycle 1 (40 labeled' in proc.stdout
    assert not (tmp_path / 'w' / 'trial_0' / 'cycle_2').exists()  # no retraining on the same set
    rows = [dict(trial=0, cycle=c, num_labeled=n, metric='m', value=v) for c, n, v in [(0, 30, 0.1), (1, 40, 0.2),
                                                                                       (2, 40, 0.3)]]
    points = {p.labeled: p for p in summarise([Run('a', 'w', rows)], 'm')}
    assert (points[40].n, points[40].mean) == (1, 0.3)  # one trial, its last value


def test_a_swallowed_ctrl_c_still_stops_the_run_at_the_next_step():
    from mmal import interrupt
    from mmal.engine.hooks import InterruptHook

    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupt.install()
        interrupt.check()  # nothing pressed: no-op
        try:  # a library that swallows the KeyboardInterrupt (a bare except, an exception in __del__, ...)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):
            InterruptHook().before_train_iter(None, 0)
    finally:
        interrupt._requested = False
        signal.signal(signal.SIGINT, previous)


def test_a_write_that_cannot_succeed_is_a_write_error_naming_the_path(toy_voc_root, tmp_path):
    import resource
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    work = tmp_path / 'w'

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # EFBIG past 4 kB (Python ignores SIGXFSZ)

    proc = subprocess.run([sys.executable, AL_TRAIN, config, '--work-dir', str(work), '--no-progress'], cwd=REPO,
                          capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: cannot write {work}') and 'File too large' in last, last
    assert 'cannot be read' not in proc.stderr and 'Traceback' not in proc.stderr


def test_an_unregistered_type_and_an_unexpected_error_are_one_line(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    proc = subprocess.run([sys.executable, AL_TRAIN, config, '--work-dir', str(tmp_path / 'w'), '--no-progress',
                           '--cfg-options', 'model.backbone.type=TinyVGGG'], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert "the config names a type that is not registered" in proc.stderr and 'TinyVGGG' in proc.stderr

    from mmal.cli import run_tool

    def broken() -> int:
        raise ZeroDivisionError('division by zero')

    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert run_tool(broken) == 1
    line = err.getvalue().strip()
    assert line.startswith('error: unexpected ZeroDivisionError: division by zero;') and len(line.splitlines()) == 1
    log = line.split('the traceback is in ')[1].split(':')[0]
    assert 'Traceback' in open(log).read() and 'ZeroDivisionError' in open(log).read()
    os.unlink(log)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (no pixel data): what a decompression bomb
    looks like before it is decoded."""
    import struct
    import zlib
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_pool_files_that_must_not_be_read_are_skipped_and_named(toy_voc_root, tmp_path):
    from mmal.datasets import ImagePoolDataset
    from mmal.datasets.unreadable import SkipUnreadable, file_problem
    images = osp.join(toy_voc_root, 'ToyVOC', 'JPEGImages')
    folder = tmp_path / 'pool'
    folder.mkdir()
    shutil.copy(osp.join(images, 'trainval_000000.jpg'), folder / 'ok.jpg')
    (folder / 'bomb.png').write_bytes(_png_header(30000, 30000))
    os.mkfifo(folder / 'pipe.jpg')  # reading it would block the run forever
    listed = ImagePoolDataset(pool=str(folder))
    assert sorted(d['img_id'] for d in listed.data_list) == ['bomb', 'ok']  # a folder lists regular files only
    pool = ImagePoolDataset(pool=[str(folder / 'ok.jpg'), str(folder / 'bomb.png'), str(folder / 'pipe.jpg')],
                            pipeline=[dict(type='LoadImageFromFile')])
    items = [SkipUnreadable(pool)[i] for i in range(3)]
    assert items[0][1] is not None and items[0][2] is None
    assert '30000x30000 pixels, more than the limit of 178956970 (set MMAL_MAX_PIXELS' in items[1][2]
    assert 'pipe.jpg is not a regular file' in items[2][2]
    assert file_problem(str(folder / 'ok.jpg')) is None
