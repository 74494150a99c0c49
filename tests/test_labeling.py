"""Labeling projects: export to and import from Label Studio and COCO (CVAT), the order of the steps.

The Label Studio files are fixtures recorded from a real Label Studio server
(tests/fixtures/labelstudio/README.md, tools/labelstudio_roundtrip.py); the error cases are those
real files with one thing broken.
"""
import copy
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, snapshot

from mmal.datasets import TOY_CLASSES
from mmal.errors import UserError
from mmal.labeling import (
    BatchImage,
    Box,
    ImportContext,
    labeling_config,
    labelstudio_tasks,
    read_coco,
    read_labelstudio,
)
from mmal.labeling.formats import coco_images, voc_to_coco
from mmal.records import Selection

FIXTURES = osp.join(REPO, 'tests', 'fixtures', 'labelstudio')
AL_PROJECT = osp.join(REPO, 'tools', 'al_project.py')


def fixture(name):
    with open(osp.join(FIXTURES, name)) as f:
        return json.load(f)


def recorded_batch():
    """The batch the recorded round trip sent to Label Studio."""
    pool = {im['id']: im for im in fixture('pool.json')['images']}
    selection = Selection.from_json(fixture('selected.json'), 'selected.json')
    return [BatchImage(id=pool[int(p.img_id)]['id'], file_name=pool[int(p.img_id)]['file_name'],
                       width=pool[int(p.img_id)]['width'], height=pool[int(p.img_id)]['height'], score=p.score)
            for p in selection.selected]


def context(batch=None, earlier=(), cycle=0, **options):
    """What the recorded export is checked against: the recorded pool and batch (cycle 0)."""
    pool = fixture('pool.json')['images']
    return ImportContext(batch=recorded_batch() if batch is None else batch,
                         pool=[(im['id'], im['file_name']) for im in pool], earlier_ids=frozenset(earlier),
                         cycle=cycle, classes=TOY_CLASSES, **options)


# -- what goes out --------------------------------------------------------------------------------
def test_tasks_carry_the_models_boxes_as_predictions_in_percent_and_the_score_to_sort_by():
    image = BatchImage(id=7, file_name='sub dir/a.jpg', width=200, height=100, score=0.8,
                       boxes=[Box('square', 20, 10, 120, 60, score=0.9)])
    [task] = labelstudio_tasks([image], '/data/local-files/?d=', 3)
    assert task['data'] == dict(image='/data/local-files/?d=sub%20dir/a.jpg', mmal_id=7, mmal_file='sub dir/a.jpg',
                                mmal_cycle=3)
    [prediction] = task['predictions']
    assert prediction['score'] == 0.8 and prediction['model_version'] == 'mmal cycle 3'
    [region] = prediction['result']
    assert region['value'] == dict(x=10.0, y=10.0, width=50.0, height=50.0, rotation=0, rectanglelabels=['square'])
    assert (region['original_width'], region['original_height'], region['score']) == (200, 100, 0.9)
    assert '<Label value="cross"/>' in labeling_config(TOY_CLASSES)


def test_the_tasks_sent_were_what_the_real_server_accepted():
    sent = fixture('tasks_sent.json')
    exported = fixture('labelstudio_export.json')
    assert [t['data'] for t in sent] == [{k: v for k, v in t['data'].items() if k != 'mmal_cycle'}
                                         for t in exported]
    assert all(t['predictions'][0]['result'] for t in sent)  # pre-annotations went out with every task


def test_coco_out_lists_the_batch_and_optionally_its_boxes():
    batch = [BatchImage(id=3, file_name='a.jpg', width=10, height=10, boxes=[Box('circle', 1, 1, 4, 5, 0.7)])]
    plain, boxes = coco_images(batch, TOY_CLASSES, False), coco_images(batch, TOY_CLASSES, True)
    assert plain['images'] == [dict(id=3, file_name='a.jpg', width=10, height=10)] and plain['annotations'] == []
    assert boxes['annotations'][0]['bbox'] == [1, 1, 3, 4] and boxes['annotations'][0]['category_id'] == 1


# -- what comes back --------------------------------------------------------------------------------
def test_a_real_label_studio_export_is_read_and_the_skipped_task_named():
    batch, export = recorded_batch(), fixture('labelstudio_export.json')
    with pytest.raises(UserError, match=r'an image without an answer \(skipped\) at test_000003.jpg; label it, or '
                                        r'pass --skipped pool'):
        read_labelstudio(export, 'export.json', context())
    returned = read_labelstudio(export, 'export.json', context(skipped_to_pool=True))
    labeled, skipped = returned.labeled, returned.skipped
    assert [b.file_name for b in batch if b.id in skipped] == ['test_000003.jpg']
    assert len(labeled) == 5 and sum(len(i.boxes) for i in labeled) == 9
    for image in labeled:
        size = next(b for b in batch if b.id == image.id)
        assert all(0 <= b.x1 < b.x2 <= size.width and 0 <= b.y1 < b.y2 <= size.height for b in image.boxes)


def test_label_studio_json_and_its_coco_export_give_the_same_labels():
    batch = recorded_batch()
    from_json = read_labelstudio(fixture('labelstudio_export.json'), 'e.json', context(skipped_to_pool=True)).labeled
    coco = read_coco(fixture('labelstudio_coco.json'), 'c.json', context(batch, skipped_to_pool=True))
    from_coco, skipped = coco.labeled, coco.skipped
    assert len(skipped) == 1  # Label Studio leaves the skipped task out of its COCO export
    key = lambda images: {i.id: sorted((b.label, round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3))  # noqa: E731
                                       for b in i.boxes) for i in images}
    assert key(from_json) == key(from_coco)


def _first_region(export):
    return next(t for t in export if t['annotations'][0]['result'])['annotations'][0]['result'][0]


@pytest.mark.parametrize('breakage, message', [
    (lambda e: _first_region(e)['value'].update(rectanglelabels=['hexagon']), "an unknown class at task"),
    (lambda e: _first_region(e)['value'].update(x=95.0, width=20.0), 'a box outside the image at task'),
    (lambda e: _first_region(e)['value'].update(width=0.0), 'a box of zero or negative size at task'),
    (lambda e: _first_region(e)['value'].update(rotation=30), 'a rotated box at task'),
    (lambda e: e[0]['data'].update(mmal_id=-1, image='/data/local-files/?d=other.jpg'),
     r"an image that is not in the project's pool at task \d+ \('/data/local-files/\?d=other.jpg'\)"),
    (lambda e: e[0]['data'].update(mmal_id=None, image='/data/local-files/?d=trainval_000001.jpg'),
     r'an image that is not in the batch at task \d+ \(trainval_000001.jpg\)'),
    (lambda e: e[0]['annotations'].append(copy.deepcopy(e[0]['annotations'][0])),
     'several answers for one image at task'),
    (lambda e: e.append(copy.deepcopy(e[1])), 'an image labeled twice at task'),
])
def test_every_problem_of_a_returned_file_is_one_sentence(breakage, message):
    export = fixture('labelstudio_export.json')
    breakage(export)
    with pytest.raises(UserError, match=f'^broken.json: {message}'):
        read_labelstudio(export, 'broken.json', context(skipped_to_pool=True))


def test_no_objects_is_an_answer_and_the_count_of_problems_is_given():
    export = fixture('labelstudio_export.json')
    export[0]['annotations'][0]['result'] = []  # "no objects": the image is labeled empty
    returned = read_labelstudio(export, 'e.json', context(skipped_to_pool=True))
    assert any(i.boxes == [] for i in returned.labeled) and returned.empty == 1
    for task in export:
        for region in task['annotations'][0]['result']:
            region['value']['rectanglelabels'] = ['hexagon']
    with pytest.raises(UserError, match=r'an unknown class at task \d+ \(trainval_\d+.jpg\) \(\'hexagon\'\) '
                                        r'\(and 7 more\)'):
        read_labelstudio(export, 'e.json', context(skipped_to_pool=True))


def test_a_box_a_rounding_error_past_the_edge_is_clipped_not_refused():
    coco = coco_images(recorded_batch()[:1], TOY_CLASSES, False)
    image = coco['images'][0]
    coco['annotations'] = [dict(id=1, image_id=image['id'], category_id=2, bbox=[-0.3, 2, image['width'] + 0.6, 5])]
    [labeled] = read_coco(coco, 'c.json', context(recorded_batch()[:1])).labeled
    assert (labeled.boxes[0].x1, labeled.boxes[0].x2) == (0.0, image['width'])


# -- the project, step by step ----------------------------------------------------------------------
def tool(*args, check=True):
    proc = subprocess.run([sys.executable, AL_PROJECT, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_a_project_cycle_with_cvat_style_coco_in_the_right_order_only(toy_voc_root, tmp_path):
    voc = osp.join(toy_voc_root, 'ToyVOC')
    ids = [line.strip() for split in ('trainval', 'test')
           for line in open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'))]
    (tmp_path / 'seed.json').write_text(json.dumps(voc_to_coco(voc, ids[:6], TOY_CLASSES)))
    truth = voc_to_coco(voc, ids, TOY_CLASSES)
    config = tmp_path / 'ssd.py'
    config.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')!r}\n"
                      "train_dataloader = dict(batch_size=4)\ntrain_cfg = dict(max_epochs=1, val_interval=1)\n"
                      "log_level = 'WARNING'\n")
    project = tmp_path / 'project'
    tool('init', project, '--images', osp.join(voc, 'JPEGImages'), '--config', config, '--seed-labels',
         tmp_path / 'seed.json')
    refused = tool('select', project, '--budget', 4, check=False)
    assert refused.returncode == 2 and 'cannot select now: the next step of cycle 0 is `al_project.py train' in \
        refused.stderr and 'Traceback' not in refused.stderr
    tool('train', project, '--no-progress')
    tool('select', project, '--budget', 4, '--scorer', 'Entropy', '--no-progress')
    tool('export', project, '--pre-threshold', 0.0)
    export = project / 'cycle_0' / 'export'
    sent = json.loads((export / 'coco_images.json').read_text())
    tasks = json.loads((export / 'labelstudio_tasks.json').read_text())
    assert len(sent['images']) == 4 and len(tasks) == 4 and all(t['predictions'][0]['result'] for t in tasks)
    assert (export / 'labeling_config.xml').read_text() == labeling_config(TOY_CLASSES)
    before = snapshot(str(project))
    again = tool('select', project, '--budget', 4, check=False)
    assert again.returncode == 2 and 'a batch of 4 images is out for labeling (cycle 0)' in again.stderr

    # CVAT's answer: its COCO export of the task, the true boxes of the batch's images
    names = {im['file_name']: im for im in truth['images']}
    answer = dict(categories=truth['categories'], images=[], annotations=[])
    for n, image in enumerate(sent['images'], 1):
        theirs = names[image['file_name']]
        answer['images'].append(dict(id=n, file_name=image['file_name'], width=image['width'],
                                     height=image['height']))
        answer['annotations'] += [dict(a, image_id=n, id=len(answer['annotations']) + k)
                                  for k, a in enumerate(a for a in truth['annotations'] if a['image_id'] ==
                                                        theirs['id'])]
    broken = copy.deepcopy(answer)
    broken['annotations'][0]['bbox'][2] = 500.0
    (tmp_path / 'broken.json').write_text(json.dumps(broken))
    refused = tool('import', project, tmp_path / 'broken.json', check=False)
    assert refused.returncode == 2 and 'a box outside the image at annotations[0]' in refused.stderr
    assert snapshot(str(project)) == before  # nothing written
    (tmp_path / 'cvat.json').write_text(json.dumps(answer))
    tool('import', project, tmp_path / 'cvat.json')
    labeled = json.loads((project / 'labeled.json').read_text())
    assert len(labeled['images']) == 10 and sum(im.get('mmal_cycle') == 0 for im in labeled['images']) == 4
    assert len(labeled['annotations']) == sum(
        1 for a in truth['annotations'] if truth['images'][a['image_id'] - 1]['file_name'] in
        {im['file_name'] for im in labeled['images']})
    previous = json.loads((project / 'cycle_0' / 'labeled.json').read_text())
    assert len(previous['images']) == 6  # the version cycle 0 trained on is kept
    status = json.loads(tool('status', project).stdout)
    assert (status['cycle'], status['next_step'], status['labeled_images']) == (1, 'train', 10)
    assert tool('import', project, tmp_path / 'cvat.json', check=False).returncode == 2  # not twice


def test_init_refuses_what_it_cannot_use(tmp_path, toy_voc_root):
    images = osp.join(toy_voc_root, 'ToyVOC', 'JPEGImages')
    config = osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')
    cases = [
        (['--images', str(tmp_path / 'none'), '--config', config, '--classes', 'a'], 'does not exist; pass a folder'),
        (['--images', images, '--config', config], 'the project needs its class names'),
        (['--images', images, '--config', str(tmp_path / 'x.py'), '--classes', 'a'], 'config file'),
    ]
    for args, message in cases:
        proc = tool('init', tmp_path / 'p', *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr
        assert not os.path.exists(tmp_path / 'p')


def test_a_simulated_project_reproduces_the_drivers_picks_and_models(toy_voc_root, tmp_path):
    """The same config and seed, once through the driver (labels from the pool's ground truth) and
    once through a project whose annotator answers with that ground truth: the same picks, and
    bit-identical models (hence the same metrics)."""
    import torch
    from conftest import al_train

    voc = osp.join(toy_voc_root, 'ToyVOC')
    ids = [line.strip() for line in open(osp.join(voc, 'ImageSets', 'Main', 'trainval.txt'))]
    truth = voc_to_coco(voc, ids, TOY_CLASSES)
    for image in truth['images']:  # absolute paths: the same strings in the driver's pool and the project's
        image['file_name'] = osp.join(voc, 'JPEGImages', image['file_name'])
    (tmp_path / 'truth.json').write_text(json.dumps(truth))
    config = tmp_path / 'coco_pool.py'
    config.write_text(f"""_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc_al.py')!r}
data_root = {toy_voc_root!r}
train_dataloader = dict(batch_size=4, dataset=dict(
    _delete_=True, type='CocoDataset', data_root='', ann_file={str(tmp_path / 'truth.json')!r},
    data_prefix=dict(img=''), metainfo=dict(classes={TOY_CLASSES!r}),
    filter_cfg=dict(filter_empty_gt=False, min_size=0), pipeline={{{{_base_.toy_train_pipeline}}}}))
test_dataloader = dict(dataset=dict(data_root=data_root))
max_iters = 3
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
log_level = 'WARNING'
active_learning = dict(initial_labeled=8, budget=6, num_cycles=2, num_trials=1, seed=0, batch_size=8,
                       scorer=dict(type='Entropy'), adapter=dict(box_mode='anchors'))
""")
    work = tmp_path / 'driver'
    al_train(config, work)
    first = json.loads((work / 'trial_0' / 'cycle_0' / 'labeled.json').read_text())['indices']
    driver_picks = [p['index'] for p in json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
                    ['selected']]

    seed = dict(categories=truth['categories'], images=[truth['images'][i] for i in first],
                annotations=[a for a in truth['annotations'] if a['image_id'] - 1 in set(first)])
    (tmp_path / 'seed.json').write_text(json.dumps(seed))
    project = tmp_path / 'project'
    tool('init', project, '--images', tmp_path / 'truth.json', '--config', config, '--seed-labels',
         tmp_path / 'seed.json')
    tool('train', project, '--no-progress')
    tool('select', project, '--budget', 6, '--no-progress')
    tool('export', project)
    sent = json.loads((project / 'cycle_0' / 'export' / 'coco_images.json').read_text())
    assert [im['id'] - 1 for im in sent['images']] == driver_picks  # pool id = pool index + 1
    wanted = {im['id'] for im in sent['images']}
    answer = dict(categories=truth['categories'], images=[im for im in truth['images'] if im['id'] in wanted],
                  annotations=[a for a in truth['annotations'] if a['image_id'] in wanted])
    (tmp_path / 'answer.json').write_text(json.dumps(answer))
    tool('import', project, tmp_path / 'answer.json')
    tool('train', project, '--no-progress')
    for cycle in (0, 1):
        ours = torch.load(project / f'cycle_{cycle}' / 'model.pth', weights_only=False)['state_dict']
        theirs = torch.load(work / 'trial_0' / f'cycle_{cycle}' / 'model.pth', weights_only=False)['state_dict']
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), cycle
