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


def _cifar_config(tmp_path):
    """The toy CIFAR demo config on the toy CIFAR under ``tmp_path / 'cifar'``."""
    config = tmp_path / 'cls.py'
    config.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'resnet_toycifar_al.py')!r}\n"
                      f"data_root = {str(tmp_path / 'cifar')!r}\n"
                      "train_dataloader = dict(dataset=dict(data_root=data_root))\n"
                      "test_dataloader = dict(dataset=dict(data_root=data_root))\n")
    return config


def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(tmp_path, capsys):
    write_toy_cifar(str(tmp_path / 'cifar'), train_per_class=5, test_per_class=2)
    batch = tmp_path / 'cifar' / 'cifar-10-batches-py' / 'data_batch_1'
    with open(batch, 'wb') as f:
        pickle.dump({b'data': np.zeros((10, 3072), np.uint8), b'labels': [0] * 10, b'x': Payload()}, f, protocol=2)
    if osp.exists(MARKER):
        os.unlink(MARKER)
    config = _cifar_config(tmp_path)
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


# -- 7. every file mmal reads has a declared shape ------------------------------------------------------
@pytest.mark.parametrize('content, message', [
    (None, 'does not exist; pass the path of a .pth file'),
    (b'', 'is empty; pass a checkpoint saved by mmengine'),
    ('truncated', 'cannot be loaded: it is truncated, damaged or not a PyTorch checkpoint (RuntimeError'),
    (b'hello, not a checkpoint\n', 'cannot be loaded: it is truncated, damaged or not a PyTorch checkpoint'),
    ('folder', 'is a folder; pass the path of a .pth file'),
])
def test_a_checkpoint_that_is_not_one_is_a_sentence(trained, tmp_path, capsys, content, message):
    config, ckpt, root = trained
    path = tmp_path / 'model.pth'
    if content == 'truncated':
        path.write_bytes(open(ckpt, 'rb').read()[:3000])
    elif content == 'folder':
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    pool = osp.join(root, 'ToyVOC', 'ImageSets', 'Main', 'trainval.txt')
    err = fails(al_select, [config, path, '--pool', pool, '--budget', 2, '--out', tmp_path / 'o.json'], capsys,
                tmp_path)
    assert f'the checkpoint {path} {message}' in err


def test_load_from_starts_every_cycle_and_a_bad_one_is_refused_before_any_write(trained, toy_voc_root, tmp_path,
                                                                                  capsys):
    _, ckpt, _ = trained
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    start = torch.load(ckpt, weights_only=True)['state_dict']
    work = tmp_path / 'w'  # lr 0: the trained model is the load_from weights (the driver used to drop them)
    al_train(config, work, '--cfg-options', f'load_from={ckpt}', 'optim_wrapper.optimizer.lr=0.0')
    trained_state = torch.load(work / 'trial_0' / 'cycle_0' / 'model.pth', weights_only=True)['state_dict']
    weights = [k for k in start if 'running' not in k and 'num_batches' not in k]
    assert weights and all(torch.equal(start[k], trained_state[k]) for k in weights)
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'junk')
    for option in (f'load_from={bad}', 'model.backbone.init_cfg.type=Pretrained',):
        extra = [f'model.backbone.init_cfg.checkpoint={bad}'] if 'init_cfg' in option else []
        err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w2', '--cfg-options', option, *extra], capsys)
        assert f'the checkpoint {bad} cannot be loaded' in err and 'fix load_from / init_cfg in the config' in err
        assert not (tmp_path / 'w2').exists()


def test_outputs_that_cannot_be_files_or_folders_are_refused_first(trained, tmp_path, capsys):
    config, ckpt, root = trained
    pool = osp.join(root, 'ToyVOC', 'ImageSets', 'Main', 'trainval.txt')
    (tmp_path / 'out.json').mkdir()
    (tmp_path / 'file').write_text('x')
    err = fails(al_select, [config, ckpt, '--pool', pool, '--budget', 2, '--out', tmp_path / 'out.json'], capsys,
                tmp_path)
    assert f'--out {tmp_path / "out.json"} is a folder; pass a file name' in err
    err = fails(al_select, [config, ckpt, '--pool', pool, '--budget', 2, '--out', tmp_path / 'file' / 'o.json'],
                capsys, tmp_path)
    assert f'{tmp_path / "file"} is a file, not a folder' in err
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'file'], capsys, tmp_path)
    assert f'the work dir {tmp_path / "file"} cannot be a folder: {tmp_path / "file"} is a file' in err
    err = fails(tool('al_report'), [tmp_path, '--out', tmp_path / 'file'], capsys, tmp_path)
    assert f'--out {tmp_path / "file"} cannot be a folder' in err
    long = tmp_path / ('w' * 300)
    err = fails(al_train_tool, [config, '--work-dir', long], capsys, tmp_path)
    assert err.startswith(f'error: cannot write {long}: File name too long;')


@pytest.mark.parametrize('content, message', [
    (bytes(range(200, 256)) + b'\0', 'is not a text file (byte'),
    ('a\nb\na\n', "lists 'a' more than once (1 repeated lines)"),
    ({'images': [{'id': 1}]}, 'images[0] has no "file_name"'),
    ({'images': {'id': 1}}, 'is not a COCO json: it has no "images" list'),
    ({'images': [[1, 'a.jpg']]}, 'images[0] is a list, not an object'),
    ({'images': [{'id': 1, 'file_name': 'a.jpg'}, {'id': 1, 'file_name': 'b.jpg'}]},
     'images[1] repeats the id 1 of images[0]'),
    ({'images': [{'id': 1, 'file_name': 'a.jpg', 'width': -4}]}, 'images[0] has "width" -4, not a positive number'),
    ('{"images": [', 'is not valid JSON'),
])
def test_a_pool_list_that_does_not_fit_its_shape_names_the_entry(trained, tmp_path, capsys, content, message):
    config, ckpt, _ = trained
    name = 'pool.txt' if isinstance(content, bytes) or (isinstance(content, str) and content.startswith('a')) \
        else 'pool.json'
    pool = tmp_path / name
    if isinstance(content, bytes):
        pool.write_bytes(content)
    else:
        pool.write_text(content if isinstance(content, str) else json.dumps(content))
    err = fails(al_select, [config, ckpt, '--pool', pool, '--budget', 2, '--out', tmp_path / 'o.json'], capsys,
                tmp_path)
    assert str(pool) in err and message in err


def _damage_annotation(root: str, name: str, old: str, new: str) -> str:
    path = osp.join(root, 'ToyVOC', 'Annotations', f'{name}.xml')
    text = open(path).read()
    assert old in text
    with open(path, 'w') as f:
        f.write(text.replace(old, new, 1))
    return path


def _first_box(root: str, name: str) -> dict:
    import xml.etree.ElementTree as ET
    box = ET.parse(osp.join(root, 'ToyVOC', 'Annotations', f'{name}.xml')).getroot().find('object/bndbox')
    return {tag: box.find(tag).text for tag in ('xmin', 'ymin', 'xmax', 'ymax')}


def test_bad_annotations_are_refused_naming_the_first_file_and_the_count(toy_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_root, num_cycles=1)
    box3, box7 = _first_box(toy_root, 'trainval_000003'), _first_box(toy_root, 'trainval_000007')
    bad = _damage_annotation(toy_root, 'trainval_000003', f'<xmax>{box3["xmax"]}</xmax>', '<xmax>7x2</xmax>')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert err == f"error: {bad}: <object> 1 <xmax> is '7x2', not a number; fix that annotation file."
    _damage_annotation(toy_root, 'trainval_000003', '<xmax>7x2</xmax>', '<xmax>500</xmax>')
    _damage_annotation(toy_root, 'trainval_000007', f'<xmax>{box7["xmax"]}</xmax>', '<xmax>400</xmax>')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert f'the pool has a box outside the image at {bad} <object> 1' in err and '(and 1 more)' in err
    assert "annotations=dict(outside='clip')" in err
    _damage_annotation(toy_root, 'trainval_000003', '<xmax>500</xmax>', f'<xmax>{int(box3["xmin"]) - 2}</xmax>')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w', '--cfg-options',
                                'active_learning.annotations.outside=clip'], capsys)
    assert f'the pool has a box of zero or negative size at {bad} <object> 1' in err
    unknown = _damage_annotation(toy_root, 'trainval_000001', '<name>', '<name>dragon')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w', '--cfg-options',
                                'active_learning.annotations.outside=clip',
                                'active_learning.annotations.degenerate=skip'], capsys)
    assert f'the pool has an object of an unknown class at {unknown} <object> 1' in err and 'dragon' in err
    assert not (tmp_path / 'w').exists()
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w', '--cfg-options',
                                'active_learning.annotations.outside=cut'], capsys)
    assert "active_learning.annotations.outside must be one of ('refuse', 'clip'), got 'cut'" in err

    proc = al_train(config, tmp_path / 'w', '--cfg-options', 'active_learning.annotations.outside=clip',
                    'active_learning.annotations.degenerate=skip', 'active_learning.annotations.unknown_class=skip')
    log = (tmp_path / 'w' / 'al.log').read_text()
    for said in ('clip 1 x a box outside the image', 'skip 1 x a box of zero or negative size',
                 'skip 1 x an object of an unknown class'):
        assert said in log and said in proc.stdout + proc.stderr, said


def test_sanitized_annotations_clip_and_skip_the_boxes_training_reads(toy_root):
    from mmal.datasets import SanitizedAnnotations
    from mmal.datasets.errors import build_dataset
    box = _first_box(toy_root, 'trainval_000003')
    _damage_annotation(toy_root, 'trainval_000003', f'<xmax>{box["xmax"]}</xmax>', '<xmax>500</xmax>')
    _damage_annotation(toy_root, 'trainval_000007', '<xmax>', '<xmax>1')  # (still a box: wider than the image)
    cfg = dict(type='VOCDataset', data_root=toy_root, ann_file='ToyVOC/ImageSets/Main/trainval.txt',
               data_prefix=dict(sub_data_root='ToyVOC/'), metainfo=dict(classes=('circle', 'square', 'triangle')),
               pipeline=[])
    raw = build_dataset(cfg)
    fixed = SanitizedAnnotations(cfg, dict(outside='clip'))
    fixed.full_init()
    index = next(i for i in range(len(raw)) if raw.get_data_info(i)['img_id'] == 'trainval_000003')
    before, after = raw.get_data_info(index), fixed.get_data_info(index)
    assert before['instances'][0]['bbox'][2] == 499 and after['instances'][0]['bbox'][2] == before['width']
    assert after['instances'][0]['bbox'][:2] == before['instances'][0]['bbox'][:2]


def test_a_missing_test_image_and_an_unknown_metric_are_refused_before_training(toy_root, tmp_path, capsys):
    config = write_config(tmp_path, toy_root, num_cycles=1, metric='pascal_voc/mAPP')
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert err == ("error: active_learning.metric 'pascal_voc/mAPP' is not a metric of the test evaluator; it "
                   "reports pascal_voc/AP50, pascal_voc/mAP: name one of them.")
    image = osp.join(toy_root, 'ToyVOC', 'JPEGImages', 'test_000002.jpg')
    os.unlink(image)
    err = fails(al_train_tool, [write_config(tmp_path, toy_root, num_cycles=1), '--work-dir', tmp_path / 'w'], capsys)
    assert f'the test image {image} does not exist; restore it' in err
    assert not (tmp_path / 'w').exists()


def test_a_selection_out_of_the_pool_is_refused_and_nothing_is_poisoned(toy_voc_root, tmp_path, capsys):
    work = tmp_path / 'w'
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    al_train(config, work)
    selected = work / 'trial_0' / 'cycle_0' / 'selected.json'
    record = json.loads(selected.read_text())
    record['selected'][0]['index'] = 999
    selected.write_text(json.dumps(record))
    shutil.rmtree(work / 'trial_0' / 'cycle_1')
    err = fails(al_train_tool, [config, '--work-dir', work, '--resume'], capsys, work)
    assert f"{selected}: field 'selected' picks index 999, but the pool has 40 images" in err


@pytest.mark.parametrize('table, message', [
    ('trial,cycle,num_labeled,num_boxes,metric,value\n0,x,8,,m,0.1\n', "line 2: cycle is 'x', not a int"),
    ('trial,cycle,num_labeled,num_boxes,metric,value\n0,0,8,,m,abc\n', "line 2: value is 'abc', not a float"),
    ('trial,num_labeled,metric,value\n0,8,m,0.1\n', "has no column 'cycle'"),
    (b'\x89PNG\r\n\x1a\n\x00\x01', 'is not a text table'),
])
def test_al_report_on_a_damaged_results_table_names_the_line(tmp_path, capsys, table, message):
    work = tmp_path / 'run'
    work.mkdir()
    if isinstance(table, bytes):
        (work / 'results.csv').write_bytes(table)
    else:
        (work / 'results.csv').write_text(table)
    err = fails(tool('al_report'), [work, '--out', tmp_path / 'report'], capsys, tmp_path)
    assert f'{work / "results.csv"}' in err and message in err and 'al_train.py with --resume' in err


def test_resume_logs_the_scalars_an_interruption_lost(toy_voc_root, tmp_path):
    work = tmp_path / 'w'
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    al_train(config, work)
    scalars = work / 'vis_data' / 'scalars.json'
    complete = scalars.read_text()
    lines = complete.splitlines(keepends=True)
    assert len(lines) == 2
    # What SIGKILL between cycle 1's metrics.json and its scalars leaves behind:
    scalars.write_text(lines[0])
    os.unlink(work / 'vis_data' / 'logged' / 'trial_0_cycle_1')
    al_train(config, work, '--resume')
    assert scalars.read_text() == complete
    al_train(config, work, '--resume')  # nothing lost: nothing logged twice
    assert scalars.read_text() == complete


@pytest.mark.parametrize('batch, message', [
    ({b'data': np.zeros((10, 3072), np.uint8)}, "no list of 10 labels under b'labels'"),
    ({b'data': np.zeros((10, 100), np.uint8), b'labels': [0] * 10}, "no b'data' array of N x 3072 bytes"),
    ({b'data': np.zeros((10, 3072), np.uint8), b'labels': [11] * 10}, 'a label outside 0..9'),
    ([1, 2, 3], "no b'data' array"),
])
def test_a_cifar_batch_of_the_wrong_shape_names_the_field(tmp_path, capsys, batch, message):
    write_toy_cifar(str(tmp_path / 'cifar'), train_per_class=5, test_per_class=2)
    path = tmp_path / 'cifar' / 'cifar-10-batches-py' / 'data_batch_1'
    with open(path, 'wb') as f:
        pickle.dump(batch, f, protocol=2)
    config = _cifar_config(tmp_path)
    err = fails(al_train_tool, [config, '--work-dir', tmp_path / 'w'], capsys)
    assert f'{path} is not a CIFAR10 batch: it has {message}' in err and not (tmp_path / 'w').exists()


def test_a_pool_list_that_is_a_pipe_is_refused_without_reading_it(trained, tmp_path, capsys):
    config, ckpt, _ = trained
    os.mkfifo(tmp_path / 'pool.txt')  # reading it would block forever
    err = fails(al_select, [config, ckpt, '--pool', tmp_path / 'pool.txt', '--budget', 2, '--out',
                            tmp_path / 'o.json'], capsys)
    assert f'{tmp_path / "pool.txt"} is not a regular file (a pipe or a device, which could block)' in err
