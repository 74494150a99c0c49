"""The AL driver: state layout, reproducible splits, crash-safe resume, clear errors."""
import csv
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from conftest import AL_TRAIN, REPO, al_train, fails, indices, labeled_sets, scores, tool, write_config


def test_full_run_layout_and_reproducibility(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root)
    first = tmp_path / 'run1'
    proc = al_train(config, first)
    assert 'pascal_voc/mAP' in proc.stdout and '[al] trial 0 cycle 2: 20 labeled' in proc.stdout
    sets = labeled_sets(first)
    assert [len(s) for s in sets] == [8, 14, 20]
    for k in range(2):
        cycle = first / 'trial_0' / f'cycle_{k}'
        selected = json.loads((cycle / 'selected.json').read_text())
        assert not set(indices(selected)) & set(sets[k])  # only unlabeled images are picked
        assert sorted(sets[k] + indices(selected)) == sets[k + 1]  # nothing lost, nothing twice
        assert scores(selected) == sorted(scores(selected), reverse=True)
        assert (cycle / 'metrics.json').is_file() and (cycle / 'model.pth').is_file()
    assert not (first / 'trial_0' / 'cycle_2' / 'selected.json').exists()  # no acquisition after the last
    rows = (first / 'results.csv').read_text().splitlines()
    assert rows[0] == 'trial,cycle,num_labeled,num_boxes,metric,value'
    assert [r.split(',')[:3] + r.split(',')[4:5] for r in rows[1:] if 'mAP' in r] == [
        ['0', str(k), str(n), 'pascal_voc/mAP'] for k, n in enumerate([8, 14, 20])]
    # The results table after every cycle, the run's report, its metric curve for the visualizer.
    assert proc.stdout.count('[al] results so far, pascal_voc/mAP') == 3 and '| 20 | ' in proc.stdout
    recorded = json.loads((first / 'al_config.json').read_text())
    assert (recorded['scorer'], recorded['metric']) == ('Entropy', 'pascal_voc/mAP')
    assert all((first / 'report' / f).stat().st_size > 0 for f in ('summary.md', 'summary.csv', 'curves.png'))
    scalars = [json.loads(line) for line in (first / 'vis_data' / 'scalars.json').read_text().splitlines()]
    assert [s['step'] for s in scalars] == [8, 14, 20] and 'al/trial_0/pascal_voc/mAP' in scalars[0]

    again = tmp_path / 'run2'
    al_train(config, again)
    assert labeled_sets(again) == sets  # same config, same labeled sets

    random_cfg = write_config(tmp_path, toy_voc_root, name='random.py', scorer=dict(type='Random'))
    other = tmp_path / 'random'
    al_train(random_cfg, other)
    assert labeled_sets(other)[0] == sets[0]  # every method starts from the same split

def _kill_when(proc, path, timeout=600):
    start = time.time()
    while not osp.exists(path):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < timeout
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

def test_sigkill_anywhere_then_resume_gives_the_same_labeled_sets(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root)
    reference = tmp_path / 'reference'
    al_train(config, reference)

    work = tmp_path / 'killed'
    cmd = [sys.executable, AL_TRAIN, config, '--work-dir', str(work), '--no-progress']
    # Killed during the training of cycle 1 ...
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _kill_when(proc, work / 'trial_0' / 'cycle_1' / 'train')
    # ... then during the scoring of cycle 1 (its metrics are written just before).
    proc = subprocess.Popen(cmd + ['--resume'], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _kill_when(proc, work / 'trial_0' / 'cycle_1' / 'metrics.json')
    al_train(config, work, '--resume')
    assert labeled_sets(work) == labeled_sets(reference)
    rows = (work / 'results.csv').read_text().splitlines()
    assert len(rows) == len((reference / 'results.csv').read_text().splitlines())  # no row twice

def test_clear_errors_and_nothing_written(toy_voc_root, tmp_path, capsys):
    script = tool('al_train')

    def error(config, work, *extra):
        return fails(script, [config, '--work-dir', work, *extra], capsys, work)

    no_al = tmp_path / 'plain.py'
    no_al.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')!r}\n")
    assert 'no `active_learning' in error(str(no_al), tmp_path / 'w0')
    assert "unknown scorer 'Entropyy'; registered: BALD" in error(
        write_config(tmp_path, toy_voc_root, name='bad.py', scorer=dict(type='Entropyy')), tmp_path / 'w1')
    assert 'the data root /nowhere/VOCdevkit/ does not exist' in error(
        write_config(tmp_path, '/nowhere/VOCdevkit/', name='nodata.py'), tmp_path / 'w2')
    for w in ('w0', 'w1', 'w2'):
        assert not (tmp_path / w).exists()

    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    al_train(config, tmp_path / 'done')
    assert 'pass --resume to continue it' in error(config, tmp_path / 'done')
    other = write_config(tmp_path, toy_voc_root, name='other.py', num_cycles=1, budget=3)
    assert 'was started with another config: active_learning.budget differ' in error(other, tmp_path / 'done',
                                                                                    '--resume')

def test_budget_larger_than_the_pool_takes_what_remains(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, initial_labeled=30, budget=50, num_cycles=2)
    proc = al_train(config, tmp_path / 'w')
    assert 'budget 50 exceeds the 10 unlabeled images; taking all of them' in proc.stdout
    assert len(labeled_sets(tmp_path / 'w', cycles=2)[1]) == 40

def test_random_subset_then_top_k_scores_only_the_subset(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, selection='random_subset_topk', subset_size=10)
    al_train(config, tmp_path / 'w')
    selected = json.loads((tmp_path / 'w' / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert selected['num_candidates'] == 10 and len(indices(selected)) == 6


def test_unreadable_pool_image_is_skipped_named_and_recorded(tmp_path):
    import torch

    from mmal.datasets import ToyVOCSpec, generate_toy_voc
    root = generate_toy_voc(str(tmp_path / 'toy'), ToyVOCSpec(num_trainval=40, num_test=16, seed=1))
    initial = set(torch.randperm(40, generator=torch.Generator().manual_seed(0))[:8].tolist())
    broken = min(set(range(40)) - initial)
    image = tmp_path / 'toy' / 'VOCdevkit' / 'ToyVOC' / 'JPEGImages' / f'trainval_{broken:06d}.jpg'
    image.write_bytes(b'not a jpeg')
    config = write_config(tmp_path, root, num_cycles=2, budget=31)  # asks for every unlabeled image
    proc = al_train(config, tmp_path / 'w')
    assert 'skipped unreadable pool image' in proc.stdout and f'trainval_{broken:06d}.jpg' in proc.stdout
    selected = json.loads((tmp_path / 'w' / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert [u['index'] for u in selected['unreadable']] == [broken]
    assert broken not in indices(selected) and len(indices(selected)) == 31


def test_progress_bars_for_training_and_acquisition(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2)
    proc = subprocess.run([sys.executable, AL_TRAIN, config, '--work-dir', str(tmp_path / 'w')], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'training: 100%' in proc.stderr and '3/3' in proc.stderr  # max_iters=3
    assert 'acquisition: 100%' in proc.stderr and 'img/s' in proc.stderr


def test_a_budget_in_boxes_buys_images_until_their_boxes_reach_it(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, budget=12, budget_unit='boxes')
    work = tmp_path / 'w'
    al_train(config, work)
    selected = json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert selected['budget_unit'] == 'boxes' and 0 < selected['num_boxes'] <= 12 and len(indices(selected)) >= 2
    with open(work / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    boxes = sorted({(int(r['num_labeled']), int(r['num_boxes'])) for r in rows})
    assert boxes[1][0] == 8 + len(indices(selected)) and boxes[1][1] == boxes[0][1] + selected['num_boxes']
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'al_report.py'), str(work), '--out',
                           str(tmp_path / 'report'), '--x', 'boxes'], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '| # labeled boxes |' in proc.stdout and f'| {boxes[1][1]} |' in proc.stdout


def test_a_budget_in_boxes_needs_boxes(tmp_path):
    from mmengine.config import Config

    from mmal.active.settings import ALSettings
    from mmal.errors import UserError
    with pytest.raises(UserError, match="budget_unit must be 'images' or 'boxes'"):
        ALSettings.from_cfg(Config(dict(active_learning=dict(initial_labeled=5, budget=5, num_cycles=2,
                                                             budget_unit='box'))))
