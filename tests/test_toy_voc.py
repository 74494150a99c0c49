import hashlib
import os
import os.path as osp
from collections import Counter

import pytest
from mmdet.registry import DATASETS

from mmal.datasets import TOY_CLASSES, ToyVOCSpec, generate_toy_voc, toy_voc_exists


def _tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def _voc(data_root: str, split: str):
    return DATASETS.build(dict(
        type='VOCDataset', data_root=data_root, metainfo=dict(classes=TOY_CLASSES),
        ann_file=f'ToyVOC/ImageSets/Main/{split}.txt', data_prefix=dict(sub_data_root='ToyVOC/'),
        test_mode=True, pipeline=[]))


def test_same_seed_same_bytes(tmp_path):
    spec = ToyVOCSpec(num_trainval=12, num_test=4, seed=3)
    a = generate_toy_voc(str(tmp_path / 'a'), spec)
    b = generate_toy_voc(str(tmp_path / 'b'), spec)
    assert _tree_digest(a) == _tree_digest(b)
    other = generate_toy_voc(str(tmp_path / 'c'), ToyVOCSpec(num_trainval=12, num_test=4, seed=4))
    assert _tree_digest(a) != _tree_digest(other)


def test_mmdet_voc_dataset_reads_it(toy_voc_root):
    trainval, test = _voc(toy_voc_root, 'trainval'), _voc(toy_voc_root, 'test')
    assert (len(trainval), len(test)) == (40, 16)
    assert trainval.metainfo['dataset_type'] is None  # not PASCAL's: VOCMetric names the toy classes
    item = trainval.get_data_info(0)
    assert osp.isfile(item['img_path']) and (item['width'], item['height']) == (128, 128)
    for inst in item['instances']:
        x1, y1, x2, y2 = inst['bbox']
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        assert 0 <= inst['bbox_label'] < len(TOY_CLASSES)


def test_pool_is_imbalanced_with_near_duplicates(tmp_path):
    root = generate_toy_voc(str(tmp_path / 't'), ToyVOCSpec(num_trainval=300, num_test=100))
    pool, test = _voc(root, 'trainval'), _voc(root, 'test')

    def class_shares(ds):
        counts = Counter(i['bbox_label'] for k in range(len(ds)) for i in ds.get_data_info(k)['instances'])
        total = sum(counts.values())
        return [counts[c] / total for c in range(len(TOY_CLASSES))]

    pool_shares, test_shares = class_shares(pool), class_shares(test)
    rare = TOY_CLASSES.index('cross')
    assert 0 < pool_shares[rare] < 0.07  # rare in the pool...
    assert test_shares[rare] > 0.12      # ...but weighed like any other class in the test mAP
    boxes = Counter(
        tuple(tuple(i['bbox']) for i in pool.get_data_info(k)['instances']) for k in range(len(pool)))
    assert sum(n - 1 for n in boxes.values()) >= 20  # near-duplicates share their boxes


def test_existing_data_is_kept_and_foreign_folders_refused(tmp_path):
    spec = ToyVOCSpec(num_trainval=4, num_test=2)
    root = tmp_path / 'toy'
    generate_toy_voc(str(root), spec)
    assert toy_voc_exists(str(root))
    marker = root / 'VOCdevkit' / 'mine.txt'
    marker.write_text('kept')
    generate_toy_voc(str(root), spec)  # complete: left alone
    assert marker.read_text() == 'kept'

    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'a.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='not a toy VOC dataset'):
        generate_toy_voc(str(foreign), spec)
    assert os.listdir(foreign) == ['a.jpg']
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.toy_voc_tmp_')]


def test_the_digits_set_is_real_handwriting_read_by_mmdet(tmp_path):
    from conftest import REPO
    from mmengine.config import Config

    from mmal.datasets.digits_voc import DIGIT_CLASSES, generate_digits_voc
    from mmal.errors import UserError
    root = str(tmp_path / 'digits')
    data_root = generate_digits_voc(root, num_trainval=12, num_test=4, max_objects=3, seed=1)
    marker = osp.join(root, '.mmal_digits_voc_complete')
    stamp = os.stat(marker).st_mtime_ns
    assert generate_digits_voc(root, num_trainval=12, num_test=4, max_objects=3, seed=1) == data_root
    assert os.stat(marker).st_mtime_ns == stamp  # a complete set of the same settings is kept
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'ssd_digitsvoc_al.py'))
    assert cfg.model.bbox_head.num_classes == len(DIGIT_CLASSES) == 10
    for loader, count in (('train_dataloader', 12), ('test_dataloader', 4)):
        dataset = DATASETS.build(dict(cfg[loader].dataset.to_dict(), data_root=data_root, pipeline=[]))
        assert len(dataset) == count and dataset.metainfo['classes'] == DIGIT_CLASSES
        boxes = [inst for i in range(count) for inst in dataset.get_data_info(i)['instances']]
        assert boxes and all(0 <= b['bbox'][0] < b['bbox'][2] <= 128 and 0 <= b['bbox'][1] < b['bbox'][3] <= 128
                             and 0 <= b['bbox_label'] < 10 for b in boxes)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'mine.txt').write_text('x')
    with pytest.raises(UserError, match='is not a digits set made by mmal'):
        generate_digits_voc(str(tmp_path / 'other'))
