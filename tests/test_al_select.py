"""tools/al_select.py: rank a folder / list / COCO json of users' images with a trained model."""
import csv
import json
import os.path as osp
import shutil
import subprocess
import sys

from conftest import REPO, al_train, write_config

AL_SELECT = osp.join(REPO, 'tools', 'al_select.py')


def test_select_from_folder_and_list(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=1)
    al_train(config, tmp_path / 'run')
    ckpt = str(tmp_path / 'run' / 'trial_0' / 'cycle_0' / 'model.pth')
    folder = tmp_path / 'mine'
    shutil.copytree(osp.join(toy_voc_root, 'ToyVOC', 'JPEGImages'), folder)
    (folder / 'zz_broken.jpg').write_bytes(b'garbage')

    def run(pool, out, *extra):
        return subprocess.run([sys.executable, AL_SELECT, config, ckpt, '--pool', str(pool), '--budget', '5',
                               '--out', str(out), *extra], cwd=REPO, capture_output=True, text=True, timeout=600)

    proc = run(folder, tmp_path / 'next.csv')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'skipped unreadable image' in proc.stderr and 'zz_broken.jpg' in proc.stderr
    with open(tmp_path / 'next.csv') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['rank']) for r in rows] == [1, 2, 3, 4, 5]
    scores = [float(r['score']) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(osp.isfile(r['img_path']) for r in rows)

    proc = run(osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt'), tmp_path / 'next.json',
               '--scorer', 'VariationRatio')
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / 'next.json').read_text())
    assert result['pool_size'] == 16 and result['scorer'] == {'type': 'VariationRatio'}
    assert len(result['selected']) == 5 and result['unreadable'] == []

    proc = run(folder, tmp_path / 'x.csv', '--scorer', 'Nope')
    assert proc.returncode == 2 and 'unknown scorer' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'x.csv').exists()

    # a COCO pool: its annotated images are labeled already, and so are those --labeled lists; a
    # folder's subfolders are part of the pool; COCO ids stay integers
    from mmal.datasets import TOY_CLASSES
    from mmal.labeling.formats import voc_to_coco
    voc = osp.join(toy_voc_root, 'ToyVOC')
    ids = [line.strip() for line in open(osp.join(voc, 'ImageSets', 'Main', 'trainval.txt'))][:12]
    coco = voc_to_coco(voc, ids, TOY_CLASSES)
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] <= 6]  # images 1-6 annotated
    (folder / 'pool.json').write_text(json.dumps(coco))
    (tmp_path / 'labeled.txt').write_text('\n'.join(str(folder / f'{i}.jpg') for i in ids[6:9]) + '\n')
    proc = run(folder / 'pool.json', tmp_path / 'coco.json', '--labeled', tmp_path / 'labeled.txt', '--selection',
               'KCenterGreedy')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '9 pool images are labeled already' in proc.stderr
    result = json.loads((tmp_path / 'coco.json').read_text())
    assert sorted(p['img_id'] for p in result['selected']) == [10, 11, 12] and result['scorer'] is None

    (folder / 'sub').mkdir()
    shutil.copy(folder / f'{ids[0]}.jpg', folder / 'sub' / 'nested.jpg')
    proc = run(folder, tmp_path / 'all.json', '--budget', '100')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'sub/nested' in {p['img_id'] for p in json.loads((tmp_path / 'all.json').read_text())['selected']}

    # a budget in boxes, estimated by the model's own boxes
    proc = run(folder / 'pool.json', tmp_path / 'boxes.json', '--budget-unit', 'boxes', '--box-threshold', '0.0',
               '--scorer', 'Entropy')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "budget of 5 boxes, estimated by the model's boxes scoring >= 0.0" in proc.stderr
    result = json.loads((tmp_path / 'boxes.json').read_text())
    assert result['budget_unit'] == 'boxes' and len(result['selected']) == 1  # an untrained SSD keeps 100 a image
    assert result['estimated_boxes'] > 5  # the first pick is always taken
