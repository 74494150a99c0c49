"""A labeling project's commands as a user runs them: one writer at a time, steps in order, the
README's walk-through as written, training that leaves one checkpoint."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, snapshot

from mmal.datasets import TOY_CLASSES
from mmal.labeling.formats import voc_to_coco
from mmal.labeling.lock import project_lock

AL_PROJECT = osp.join(REPO, 'tools', 'al_project.py')


def tool(*args, check=True):
    proc = subprocess.run([sys.executable, AL_PROJECT, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def truth_of(toy_voc_root):
    voc = osp.join(toy_voc_root, 'ToyVOC')
    ids = [line.strip() for split in ('trainval', 'test')
           for line in open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'))]
    return osp.join(voc, 'JPEGImages'), ids, voc_to_coco(voc, ids, TOY_CLASSES)


def answer_for(sent, truth, shift=0.0):
    """A CVAT-style COCO answer with the true boxes of the images ``sent`` lists (moved by ``shift``)."""
    names = {im['file_name']: im for im in truth['images']}
    answer = dict(categories=truth['categories'], images=[], annotations=[])
    for n, image in enumerate(sent['images'], 1):
        answer['images'].append(dict(id=n, file_name=image['file_name'], width=image['width'],
                                     height=image['height']))
        for a in truth['annotations']:
            if a['image_id'] == names[image['file_name']]['id']:
                x, y, w, h = a['bbox']
                answer['annotations'].append(dict(id=len(answer['annotations']) + 1, image_id=n,
                                                  category_id=a['category_id'], bbox=[x + shift, y, w, h]))
    return answer


@pytest.fixture()
def batch_out(toy_voc_root, tmp_path):
    """A project without seed labels whose first batch (picked at random, no model) is out."""
    images, _, truth = truth_of(toy_voc_root)
    project = tmp_path / 'project'
    tool('init', project, '--images', images, '--config', osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py'),
         '--classes', *TOY_CLASSES)
    tool('select', project, '--budget', 4, '--no-progress')
    tool('export', project)
    sent = json.loads((project / 'cycle_0' / 'export' / 'coco_images.json').read_text())
    return project, sent, truth


# -- one writer at a time --------------------------------------------------------------------------
@pytest.mark.parametrize('first', ['a', 'b'])
def test_two_imports_started_at_once_never_lose_a_batch(batch_out, tmp_path, first):
    project, sent, truth = batch_out
    files = {'a': tmp_path / 'a.json', 'b': tmp_path / 'b.json'}
    files['a'].write_text(json.dumps(answer_for(sent, truth)))
    files['b'].write_text(json.dumps(answer_for(sent, truth, shift=0.5)))
    order = [first, 'b' if first == 'a' else 'a']
    procs = {k: subprocess.Popen([sys.executable, AL_PROJECT, 'import', str(project), str(files[k])], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in order}
    results = {k: (p.wait(300), p.stderr.read()) for k, p in procs.items()}
    won = [k for k, (code, _) in results.items() if code == 0]
    assert len(won) == 1, results
    lost = results['b' if won == ['a'] else 'a']
    assert lost[0] == 2 and lost[1].count('\n') == 1 and (
        'is being changed by `al_project.py import`' in lost[1] or 'cannot import now' in lost[1]), lost
    labeled = json.loads((project / 'labeled.json').read_text())
    winner = answer_for(sent, truth, shift=0.5 if won == ['b'] else 0.0)
    assert sorted(a['bbox'][0] for a in labeled['annotations']) == sorted(a['bbox'][0] for a in winner['annotations'])
    returned = json.loads((project / 'cycle_0' / 'returned.json').read_text())
    assert returned['source'] == str(files[won[0]])


def test_a_command_while_another_holds_the_lock_is_one_sentence_and_changes_nothing(batch_out, tmp_path):
    project, sent, truth = batch_out
    (tmp_path / 'a.json').write_text(json.dumps(answer_for(sent, truth)))
    with project_lock(str(project), 'train'):
        before = snapshot(str(project))
        for args in (['import', project, tmp_path / 'a.json'], ['select', project, '--budget', 2],
                     ['config', project, osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')]):
            refused = tool(*args, check=False)
            assert refused.returncode == 2 and re.fullmatch(
                r'error: \S+ is being changed by `al_project.py train` \(pid \d+, since [\d:]+\); wait until it ends, '
                r'then run this command again.\n', refused.stderr), refused.stderr
        assert snapshot(str(project)) == before
        assert tool('status', project).returncode == 0  # reading needs no lock
    tool('import', project, tmp_path / 'a.json')


# -- steps ------------------------------------------------------------------------------------------------
def test_import_before_export_twice_or_of_mmals_own_file_is_one_sentence(toy_voc_root, tmp_path, batch_out):
    project, sent, truth = batch_out
    (tmp_path / 'a.json').write_text(json.dumps(answer_for(sent, truth)))
    own = tool('import', project, project / 'cycle_0' / 'export' / 'coco_images.json', check=False)
    assert own.returncode == 2 and 'is coco_images.json, which mmal wrote for the annotators, not their labels' \
        in own.stderr
    done = tool('import', project, tmp_path / 'a.json')
    assert 'imported 4 images' in done.stdout
    again = tool('import', project, tmp_path / 'a.json', check=False)
    assert again.returncode == 2 and f'{tmp_path / "a.json"} was already imported (cycle 0: 4 images); next: ' \
        f'`al_project.py train {project}`.' in again.stderr
    fresh = tmp_path / 'fresh'
    images, _, _ = truth_of(toy_voc_root)
    tool('init', fresh, '--images', images, '--config', osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py'),
         '--classes', *TOY_CLASSES)
    early = tool('import', fresh, tmp_path / 'a.json', check=False)
    assert early.returncode == 2 and 'cannot import now: the next step of cycle 0 is `al_project.py select' in \
        early.stderr
    assert json.loads(tool('status', fresh).stdout)['cycle'] == 0


def test_images_that_came_back_empty_are_counted_in_the_summary_and_status(batch_out, tmp_path):
    project, sent, truth = batch_out
    answer = answer_for(sent, truth)
    empty_id = answer['images'][0]['id']
    answer['annotations'] = [a for a in answer['annotations'] if a['image_id'] != empty_id]
    (tmp_path / 'a.json').write_text(json.dumps(answer))
    out = tool('import', project, tmp_path / 'a.json').stdout
    assert '1 came back without a box' in out
    status = json.loads(tool('status', project).stdout)
    assert status['labeled_without_boxes'] == 1 and status['last_import']['images_without_boxes'] == 1


# -- the README's walk-through ------------------------------------------------------------------------------
def walkthrough():
    """The labeling page's command block for a project, split where the annotators label the batch."""
    text = open(osp.join(REPO, 'docs', 'labeling.md')).read()
    block = re.search(r'<!-- walkthrough -->\n```bash\n(.*?)```', text, re.S).group(1)
    before, after = re.split(r'\n# \.\.\. label the batch.*\n', block)
    return before, after


@pytest.mark.parametrize('seeds', [False, pytest.param(True, marks=pytest.mark.slow)])  # seeds: 2 trainings
def test_the_docs_walkthrough_runs_as_written(toy_voc_root, tmp_path, seeds):
    images, ids, truth = truth_of(toy_voc_root)
    before, after = walkthrough()
    project = tmp_path / 'my_project'
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    setup = f'set -euo pipefail\ncd {REPO}\nP={project}\nIMAGES={images}\n'
    before = re.sub(r'^(P|IMAGES)=.*$', '', before, flags=re.M)
    if seeds:
        (tmp_path / 'seed.json').write_text(json.dumps(voc_to_coco(osp.join(toy_voc_root, 'ToyVOC'), ids[:8],
                                                                   TOY_CLASSES)))
        before = before.replace('--classes', f'--seed-labels {tmp_path / "seed.json"} --classes', 1)
    first = subprocess.run(['bash', '-c', setup + before], capture_output=True, text=True, env=env, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert ('nothing is labeled yet' in first.stdout) != seeds
    sent = json.loads((project / 'cycle_0' / 'export' / 'coco_images.json').read_text())
    (tmp_path / 'cvat.json').write_text(json.dumps(answer_for(sent, truth)))
    second = subprocess.run(['bash', '-c', setup + after.replace(' labels.json', f' {tmp_path / "cvat.json"}')],
                            capture_output=True, text=True, env=env, timeout=1200)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    status = json.loads(second.stdout[second.stdout.rindex('{\n "project"'):])
    assert status['cycle'] == 1 and status['labeled_images'] == len(sent['images']) + (8 if seeds else 0)
    assert 'training without its ActiveLearningHook' in second.stdout  # the example config arms one
    # training kept the final model only: no epoch checkpoints
    assert [f for f in os.listdir(project / 'cycle_1' / 'train') if f.endswith('.pth')] == []
    assert osp.isfile(project / 'cycle_1' / 'model.pth')


def test_the_config_changes_after_init_and_cfg_options_apply_to_one_run(batch_out, tmp_path):
    project, sent, truth = batch_out
    (tmp_path / 'a.json').write_text(json.dumps(answer_for(sent, truth)))
    tool('import', project, tmp_path / 'a.json')
    tool('train', project, '--no-progress', '--cfg-options', 'train_cfg.max_epochs=1')
    log = open(next(osp.join(r, f) for r, _, fs in os.walk(project / 'cycle_1' / 'train') for f in fs
                    if f.endswith('.log'))).read()
    assert 'Epoch(train) [1]' in log and 'Epoch(train) [2]' not in log
    other = tmp_path / 'other.py'
    other.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')!r}\n")
    wrong = tmp_path / 'wrong.py'
    wrong.write_text(f"_base_ = {str(other)!r}\nmodel = dict(bbox_head=dict(num_classes=3))\n")
    refused = tool('config', project, wrong, check=False)
    assert refused.returncode == 2 and 'predicts 3 classes but the project has 5' in refused.stderr
    out = tool('config', project, other).stdout
    assert 'next: train' in out  # the model of this cycle was trained with the old config
    assert json.loads((project / 'project.json').read_text())['config'] == str(other)
    missing = tool('config', project, tmp_path / 'nope.py', check=False)
    assert missing.returncode == 2 and 'does not exist' in missing.stderr


def test_the_mmal_command_is_on_path_and_runs_the_same_code(tmp_path):
    exe = shutil.which('mmal', path=osp.dirname(sys.executable))
    assert exe, 'pip install puts the mmal command beside python'
    listed = subprocess.run([exe], capture_output=True, text=True)
    assert listed.returncode == 2 and all(c in listed.stdout for c in ('train', 'select', 'project', 'report'))
    unknown = subprocess.run([exe, 'nope'], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr == ("error: mmal has no command 'nope'; use one of train, "
                                                          "select, project, report, fit, sweep (mmal --help).\n")
    missing = subprocess.run([exe, 'project', 'status', str(tmp_path / 'none')], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith('error: ') and 'al_project.py init' in missing.stderr


# -- review of what comes back ---------------------------------------------------------------------------------
def test_imports_are_reviewed_and_a_review_batch_round_trips(batch_out, tmp_path):
    project, sent, truth = batch_out
    (tmp_path / 'a.json').write_text(json.dumps(answer_for(sent, truth)))
    assert 'review: none (no model picked this batch' in tool('import', project, tmp_path / 'a.json').stdout
    stop = ['active_learning.stop.threshold=0.01', 'active_learning.stop.window=1', 'active_learning.stop.stop_set=8']
    trained = tool('train', project, '--no-progress', '--cfg-options', 'train_cfg.max_epochs=2', *stop).stdout
    assert 'stopping rule: agreement with the cycle 0 model on the stop set - (no earlier model)' in trained
    tool('select', project, '--budget', 6, '--scorer', 'Entropy', '--no-progress',
         '--cfg-options', 'active_learning.control_fraction=0.5')  # half the batch drawn at random
    assert len(json.loads((project / 'cycle_1' / 'selected.json').read_text())['control']) == 3
    tool('export', project)
    kept = json.loads((project / 'cycle_1' / 'predictions.json').read_text())
    assert kept['threshold'] == 0.05 and len(kept['images']) == 6  # the picking model's boxes on the batch
    sent = json.loads((project / 'cycle_1' / 'export' / 'coco_images.json').read_text())
    answer = answer_for(sent, truth)
    answer['annotations'][0]['category_id'] = answer['annotations'][0]['category_id'] % 5 + 1  # a wrong class
    del answer['annotations'][1]  # a missed object
    (tmp_path / 'b.json').write_text(json.dumps(answer))
    out = tool('import', project, tmp_path / 'b.json').stdout
    assert re.search(r'review \(the cycle 1 model, which had not seen these labels\): \d+ of 6 images look '
                     r'suspicious', out), out
    record = json.loads((project / 'cycle_1' / 'review.json').read_text())
    control = record['summary']['control']
    assert control['mAP']['n'] == 3 and control['mAP']['low'] <= control['mAP']['value'] <= control['mAP']['high']
    assert re.search(r'the cycle 1 model on the random control share \(3 images\): mAP [\d.]+ \(95 % [\d.]+-[\d.]+\), '
                     r'an estimate of its mAP on the images the method left; on the method\'s own picks [\d.]+',
                     out), out
    pooled = control['pool_mAP']  # 3 picks and 3 control images standing for the images the picks left
    assert pooled['n'] == 6 and pooled['low'] <= pooled['value'] <= pooled['high']
    assert 'its mAP on the whole pool it picked from, picks and control weighted by how likely each was to be ' \
           'labeled' in out
    assert len(record['images']) == 6 and [im['combined'] for im in record['images']] == sorted(
        (im['combined'] for im in record['images']), reverse=True)
    assert all(0 <= im[t] <= 1 for im in record['images'] for t in ('missing', 'spurious', 'wrong_class',
                                                                     'badly_located'))

    shown = tool('review', project, '--out', tmp_path / 'ranked.csv', '--min-score', 0, '--top', 3)
    assert 'review batch of 3 images' in shown.stdout
    assert len((tmp_path / 'ranked.csv').read_text().splitlines()) == 1 + 6
    batch = json.loads((project / 'cycle_1' / 'review' / 'batch.json').read_text())
    tasks = json.loads((project / 'cycle_1' / 'review' / 'labelstudio_tasks.json').read_text())
    assert [t['data']['mmal_id'] for t in tasks] == batch['ids'] == [im['id'] for im in record['images'][:3]]
    assert all([p['model_version'] for p in t['predictions']] == ['returned labels, cycle 1', 'mmal cycle 1 review']
               for t in tasks)
    own = tool('import', project, project / 'cycle_1' / 'review' / 'coco_labels.json', '--review', check=False)
    assert own.returncode == 2 and 'which mmal wrote for the reviewers' in own.stderr

    # the second annotator returns the true labels of the review batch
    names = {im['id']: im['file_name'] for im in json.loads((project / 'pool.json').read_text())['images']}
    fixed = answer_for(dict(images=[dict(file_name=names[i], width=128, height=128) for i in batch['ids']]), truth)
    (tmp_path / 'fixed.json').write_text(json.dumps(fixed))
    before = json.loads((project / 'labeled.json').read_text())
    done = tool('import', project, tmp_path / 'fixed.json', '--review').stdout
    changed = int(re.search(r'3 images came back, (\d+) with changed labels', done).group(1))
    after = json.loads((project / 'labeled.json').read_text())
    history = json.loads((project / 'cycle_1' / 'reviewed.json').read_text())['imports']
    assert len(history) == 1 and len(history[0]['changed']) == changed
    wrong = {a['image_id'] for a in before['annotations']} ^ {a['image_id'] for a in after['annotations']}
    assert wrong <= set(batch['ids'])
    for image_id in batch['ids']:  # the reviewed images now hold the true labels
        ours = sorted((a['category_id'], a['bbox']) for a in after['annotations'] if a['image_id'] == image_id)
        file_name = names[image_id]
        true_id = next(im['id'] for im in truth['images'] if im['file_name'] == file_name)
        assert ours == sorted((a['category_id'], a['bbox']) for a in truth['annotations'] if a['image_id'] == true_id)
    assert len(after['images']) == len(before['images'])
    status = json.loads(tool('status', project).stdout)
    assert status['next_step'] == 'train' and status['last_review']['images'] == 6
    assert status['last_review']['control']['mAP']['n'] == 3
    # the next training measures the agreement of successive models on the stop set, and trains the shadow
    # models of the gain estimate: the labeled set before cycle 1's batch plus its 3 picks, or its 3 control images
    gain = ['active_learning.control_fraction=0.5', 'active_learning.gain_estimate=True']
    trained = tool('train', project, '--no-progress', '--cfg-options', 'train_cfg.max_epochs=2', *stop, *gain).stdout
    assert re.search(r'stopping rule: agreement with the cycle 1 model on the stop set [\d.]+; it fires at >= 0.01 '
                     r'for 1 cycles in a row: (it fires now|not yet)', trained), trained
    rule = json.loads(tool('status', project).stdout)['stopping_rule']
    assert rule['cycle'] == 2 and rule['agreements'][0] is None and len(rule['agreements']) == 2
    assert rule['fires'] == (rule['agreements'][1] >= 0.01)
    before = len(json.loads((project / 'cycle_1' / 'labeled.json').read_text())['images'])
    for name in ('picked', 'random'):
        assert f'gain estimate: training the {name} shadow model ({before + 3} images)' in trained
        assert (project / 'cycle_2' / 'gain' / name / 'model.pth').is_file()
    tool('select', project, '--budget', 6, '--scorer', 'Entropy', '--no-progress', '--cfg-options', *gain)
    tool('export', project)
    assert set(json.loads((project / 'cycle_2' / 'predictions.json').read_text())['shadows']) == {'picked', 'random'}
    sent = json.loads((project / 'cycle_2' / 'export' / 'coco_images.json').read_text())
    (tmp_path / 'c.json').write_text(json.dumps(answer_for(sent, truth)))
    out = tool('import', project, tmp_path / 'c.json').stdout
    assert re.search(r"the last batch's picks beat as many random images by [-+][\d.]+ mAP on the pool \(95 % "
                     r'[-+][\d.]+ to [-+][\d.]+; shadow models, scored on this batch\)', out), out
    estimate = json.loads(tool('status', project).stdout)['last_review']['control']['gain_mAP']
    assert estimate['n'] == 6 and -1 <= estimate['low'] <= estimate['value'] <= estimate['high'] <= 1


def test_a_review_import_without_a_review_batch_is_one_sentence(batch_out, tmp_path):
    project, sent, truth = batch_out
    (tmp_path / 'a.json').write_text(json.dumps(answer_for(sent, truth)))
    tool('import', project, tmp_path / 'a.json')
    refused = tool('import', project, tmp_path / 'a.json', '--review', check=False)
    assert refused.returncode == 2 and 'cycle 0 sent no review batch' in refused.stderr
    none = tool('review', project, check=False)
    assert none.returncode == 2 and 'cycle 0 has no review: its batch was picked without a model' in none.stderr
