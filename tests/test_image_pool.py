"""ImagePoolDataset reads every pool form; atomic JSON writes."""
import json
import os
import os.path as osp

import pytest

from mmal.datasets import ImagePoolDataset
from mmal.errors import UserError
from mmal.fileio import atomic_write_json


def test_voc_list_coco_json_folder_and_paths(toy_voc_root, tmp_path):
    voc = osp.join(toy_voc_root, 'ToyVOC')
    from_list = ImagePoolDataset(pool=osp.join(voc, 'ImageSets', 'Main', 'test.txt'))
    assert len(from_list) == 16
    first = from_list.get_data_info(0)
    assert first['img_id'] == 'test_000000' and osp.isfile(first['img_path'])

    images = [dict(id=i, file_name=f'test_{i:06d}.jpg') for i in range(3)]
    coco = tmp_path / 'pool.json'
    coco.write_text(json.dumps(dict(images=images, annotations=[], categories=[])))
    from_coco = ImagePoolDataset(pool=str(coco), img_dir=osp.join(voc, 'JPEGImages'))
    assert [from_coco.get_data_info(i)['img_path'] for i in range(3)] == \
        [osp.join(voc, 'JPEGImages', f'test_{i:06d}.jpg') for i in range(3)]

    folder = ImagePoolDataset(pool=osp.join(voc, 'JPEGImages'))
    assert len(folder) == 56 and folder.get_data_info(0)['img_id'] == 'test_000000'  # sorted by name

    paths = ImagePoolDataset(pool=[first['img_path']])
    assert len(paths) == 1 and paths.get_data_info(0)['img_id'] == 'test_000000'


def test_missing_empty_or_malformed_pool_is_one_clear_sentence(tmp_path):
    with pytest.raises(UserError, match='does not exist; pass a VOC ImageSets list'):
        ImagePoolDataset(pool=str(tmp_path / 'nowhere.txt'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='holds no images'):
        ImagePoolDataset(pool=str(tmp_path / 'empty'))
    (tmp_path / 'bad.json').write_text('{"annotations": []}')
    with pytest.raises(UserError, match='is not a COCO json: it has no "images" list'):
        ImagePoolDataset(pool=str(tmp_path / 'bad.json'))


def test_atomic_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / 'state' / 'selected.json'
    atomic_write_json(str(path), {'indices': [1, 2]})
    atomic_write_json(str(path), {'indices': [3]})
    assert json.loads(path.read_text()) == {'indices': [3]}
    assert os.listdir(path.parent) == ['selected.json']  # no temp file left behind

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(str(path), {'bad': Unserialisable()})
    assert json.loads(path.read_text()) == {'indices': [3]}  # the old content survives a failed write
    assert os.listdir(path.parent) == ['selected.json']
