"""Label-free features (mmal/engine/features.py, mmal/models/simclr.py): SimCLR's loss and views, the
content-addressed cache, a pretrained backbone's embedding, and both in acquisitions (classification,
a detection pool, the driver on one and two processes)."""
import json
import math
import os.path as osp

import pytest
import torch
from conftest import REPO, al_train, dist_train, indices, toy_ssd_cfg
from mmdet.registry import DATASETS, MODELS
from mmdet.utils import register_all_modules
from test_classification import write_cls_config

from mmal.active.runner_config import with_pipeline
from mmal.checkpoint import UnsafeCheckpointError
from mmal.datasets.errors import build_dataset
from mmal.datasets.toy_cls import write_toy_cifar
from mmal.engine.acquisition import AcquisitionSpec, acquire
from mmal.engine.features import CheckpointFeatures, SelfSupervisedFeatures, build_features, read_pool
from mmal.engine.hooks import scoring_pipeline
from mmal.engine.method import build_method
from mmal.errors import UserError
from mmal.models.simclr import augment, nt_xent

register_all_modules()
TINY = dict(backbone=dict(type='CIFARResNet', depth=18, base_channels=8, out_indices=(3, )), in_channels=64)


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    return write_toy_cifar(str(tmp_path_factory.mktemp('feat') / 'cifar'), 10, train_per_class=6, test_per_class=2,
                           seed=5)


def cifar_pool(root):
    return DATASETS.build(dict(type='CIFAR10', data_root=root, split='train', pipeline=[dict(type='PackClsInputs')]))


def test_nt_xent_is_the_cross_entropy_of_each_view_against_its_partner():
    z = torch.eye(4).repeat(2, 1)  # views i and i + 4 identical, the rest orthogonal
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 6))  # the partner against 6 orthogonal rows
    assert nt_xent(z, t).item() == pytest.approx(expected, rel=1e-6)
    shuffled = torch.cat([z[:4], z[4:].roll(1, 0)])
    assert nt_xent(shuffled, t) > nt_xent(z, t)


def test_a_view_without_crop_jitter_grey_or_flip_is_the_image():
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(augment(x, crop_min=1.0, jitter=0.0, grey=0.0, flip=False), x, atol=1e-5)
    torch.manual_seed(0)
    view = augment(x)
    assert view.shape == x.shape and 0 <= view.min() and view.max() <= 1 and not torch.allclose(view, x)


def test_self_supervised_features_are_cached_by_content(cifar_root, tmp_path):
    pool = cifar_pool(cifar_root)
    calls = []

    class Counted(SelfSupervisedFeatures):
        def compute(self, images, readable):
            calls.append(len(images))
            return super().compute(images, readable)

    first = Counted(epochs=1, batch_size=16, cache_dir=str(tmp_path), **TINY).of(pool)
    assert first.features.shape == (60, 64) and torch.isfinite(first.features).all() and first.seconds > 0
    assert len(list(tmp_path.glob('self_supervised_*.pt'))) == 1
    again = Counted(epochs=1, batch_size=16, cache_dir=str(tmp_path), **TINY).of(cifar_pool(cifar_root))
    assert calls == [60] and torch.equal(again.features, first.features) and again.seconds == first.seconds
    other = Counted(epochs=2, batch_size=16, cache_dir=str(tmp_path), **TINY).of(pool)  # another setting
    assert calls == [60, 60] and other.key != first.key
    images, _ = read_pool(pool, 32)
    assert images.dtype == torch.uint8 and images.shape == (60, 3, 32, 32)


def test_a_pretrained_backbone_gives_its_own_embedding(cifar_root, tmp_path):
    torch.manual_seed(0)
    backbone = MODELS.build(TINY['backbone'])
    path = str(tmp_path / 'pretrained.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in backbone.state_dict().items()} | {
        'head.fc.weight': torch.zeros(10, 64)}}, path)
    source = CheckpointFeatures(checkpoint=path, backbone=TINY['backbone'], image_size=32, to_rgb=False,
                                mean=(0, 0, 0), std=(1, 1, 1), cache_dir=str(tmp_path))
    pool = cifar_pool(cifar_root)
    found = source.of(pool)
    backbone.eval()
    images, _ = read_pool(pool, 32)
    with torch.no_grad():
        expected = backbone(images.float())[-1].mean(dim=(2, 3))
    assert torch.allclose(found.features, expected, atol=1e-4)
    with pytest.raises(UserError, match=r'does not fit the backbone ResNet: \d+ of its \d+ weights are missing'):
        CheckpointFeatures(checkpoint=path, image_size=32, cache_dir=str(tmp_path)).of(pool)
    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save({'state_dict': {}, 'note': UserError('code')}, unsafe)
    with pytest.raises(UnsafeCheckpointError, match='trust-checkpoint'):
        CheckpointFeatures(checkpoint=unsafe, backbone=TINY['backbone'], image_size=32,
                           cache_dir=str(tmp_path)).of(pool)


@pytest.mark.parametrize('cfg, message', [
    ('self_supervised', 'must be dict\\(source=...\\) with source one of'),
    (dict(source='pixels'), "source one of \\['model', 'checkpoint', 'self_supervised'\\]"),
    (dict(source='self_supervised', epochs=0), 'epochs must be an integer >= 1'),
    (dict(source='self_supervised', width=3), "unexpected keyword argument 'width'"),
    (dict(source='model', epochs=3), "source 'model' takes no options"),
])
def test_bad_feature_configs_are_one_sentence(cfg, message):
    with pytest.raises(UserError, match=message):
        build_features(cfg)


def test_model_source_is_todays_behaviour():
    assert build_features(None) is None and build_features(dict(source='model')) is None


def test_typiclust_on_label_free_features_needs_no_model(cifar_root, tmp_path):
    pool = cifar_pool(cifar_root)
    source = SelfSupervisedFeatures(epochs=1, batch_size=16, cache_dir=str(tmp_path), **TINY)
    spec = AcquisitionSpec(build_method(None, dict(type='TypiClust'), seed=0), 5, features=source, progress=False)
    record = acquire(spec, None, pool, [0, 1, 2])
    assert len(record.selected) == 5 and not {p.index for p in record.selected} & {0, 1, 2}
    assert record.context['features']['source'] == 'self_supervised'
    assert record.context['features']['dim'] == 64
    # the coverage switch measures its criterion on the same features and says so in the record
    switch = build_method(None, dict(type='RegimeSwitch', switch_coverage=0.99, delta=0.1, low=dict(type='TypiClust'),
                                     high=dict(type='KCenterGreedy')), seed=0)
    record = acquire(AcquisitionSpec(switch, 5, features=source, progress=False), None, pool, [0, 1, 2])
    assert record.acted_by == 'TypiClust' and 0 < record.context['coverage'] < 0.99


def test_a_detection_pool_gets_an_image_level_embedding(toy_voc_root, tmp_path):
    cfg = toy_ssd_cfg(toy_voc_root, str(tmp_path / 'work'))
    pipeline = scoring_pipeline(cfg.test_dataloader.dataset.pipeline)
    pool = build_dataset(with_pipeline(cfg.train_dataloader.dataset.to_dict(), pipeline))
    source = SelfSupervisedFeatures(epochs=1, batch_size=8, image_size=32, cache_dir=str(tmp_path), **TINY)
    spec = AcquisitionSpec(build_method(None, dict(type='KCenterGreedy'), seed=0), 4, features=source, progress=False)
    record = acquire(spec, None, pool, [0, 1])
    assert len(record.selected) == 4 and record.context['features']['dim'] == 64
    assert source.of(pool).features.shape[0] == len(pool)


def test_driver_reads_self_supervised_features_once_per_pool(cifar_root, tmp_path):
    features = dict(source='self_supervised', epochs=1, batch_size=16, cache_dir=str(tmp_path / 'cache'), **TINY)
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', scorer=None, selection=dict(type='TypiClust'),
                              num_trials=2, initial_labeled=10, features=features)
    work = tmp_path / 'work'
    al_train(config, work)
    cached = list((tmp_path / 'cache').glob('self_supervised_*.pt'))
    assert len(cached) == 1
    records = [json.loads((work / f'trial_{t}' / 'cycle_0' / 'selected.json').read_text()) for t in (0, 1)]
    assert records[0]['features'] == records[1]['features']  # trial 1 read trial 0's features
    assert all(len(indices(r)) == 10 for r in records)


def test_two_processes_read_the_same_features_and_pick_like_one(cifar_root, tmp_path):
    cache = tmp_path / 'cache'  # shared by both runs: the one-process run reads what rank 0 wrote
    features = dict(source='self_supervised', epochs=1, batch_size=16, cache_dir=str(cache), **TINY)
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', scorer=None, selection=dict(type='TypiClust'),
                              initial_labeled=10, features=features)
    dist_train(config, tmp_path / 'dist')
    assert len(list(cache.glob('self_supervised_*.pt'))) == 1
    al_train(config, tmp_path / 'single')
    picked = [json.loads((w / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
              for w in (tmp_path / 'dist', tmp_path / 'single')]
    assert indices(picked[0]) == indices(picked[1]) and picked[0]['features'] == picked[1]['features']


def test_a_labeling_project_picks_its_first_batch_by_typicality_without_a_model(toy_voc_root, tmp_path):
    from test_labeling_project import tool, truth_of

    from mmal.datasets import TOY_CLASSES
    config = tmp_path / 'typical.py'
    features = dict(source='self_supervised', epochs=1, batch_size=8, **TINY)
    config.write_text(f"_base_ = {osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc.py')!r}\n"
                      f"active_learning = dict(selection=dict(type='TypiClust'), features={features!r})\n")
    images, _, _ = truth_of(toy_voc_root)
    project = tmp_path / 'project'
    tool('init', project, '--images', images, '--config', config, '--classes', *TOY_CLASSES)
    said = tool('select', project, '--budget', 4, '--no-progress')
    assert 'picked at random' not in said.stdout
    record = json.loads((project / 'cycle_0' / 'selected.json').read_text())
    assert record['acted_by'] == 'TypiClust' and len(record['selected']) == 4
    assert record['features']['source'] == 'self_supervised'
    assert len(list((project / 'features').glob('self_supervised_*.pt'))) == 1


def test_a_cache_folder_that_cannot_be_made_is_one_sentence_before_any_training(cifar_root, tmp_path):
    blocked = tmp_path / 'file'
    blocked.write_text('not a folder')
    source = SelfSupervisedFeatures(epochs=1, batch_size=16, cache_dir=str(blocked / 'cache'), **TINY)
    with pytest.raises(UserError, match=r'the feature cache \(active_learning.features.cache_dir\) .*/cache cannot be '
                                        r'a folder: .*/file is a file; choose another path.'):
        source.of(cifar_pool(cifar_root))


def test_features_for_a_method_that_reads_none_is_one_sentence():
    from mmengine.config import Config

    from mmal.active.settings import ALSettings
    cfg = Config(dict(active_learning=dict(initial_labeled=5, budget=5, num_cycles=2, scorer=dict(type='Entropy'),
                                           features=dict(source='self_supervised'))))
    with pytest.raises(UserError, match='features is set but Entropy \\+ TopK reads no features; use a selection'):
        ALSettings.from_cfg(cfg)
