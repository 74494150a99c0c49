"""Classification: datasets in their on-disk formats, ResNet-18, the adapter, LLAL, configs, the driver."""
import glob
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, al_train, dist_train, fails, indices, tool
from mmdet.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from mmal.datasets.toy_cls import write_toy_cifar, write_toy_folders
from mmal.engine import build_method
from mmal.errors import UserError
from mmal.models import ClassificationAdapter
from mmal.registry import SCORERS

TINY_BACKBONE = dict(type='CIFARResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3))
METHODS = ['random', 'entropy', 'var_ratio', 'margin', 'bald', 'coreset', 'llal']
DATASET_SETTINGS = {  # Table 1: (initial, cycles)
    'cifar10': (1000, 20, 10), 'cifar100': (1000, 20, 100), 'caltech101': (1000, 5, 101), 'caltech256': (1000, 10, 257)}


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cls') / 'cifar')
    write_toy_cifar(root, 10, train_per_class=12, test_per_class=4, seed=3)
    return write_toy_cifar(root, 100, train_per_class=1, test_per_class=1, seed=4)


@pytest.fixture(scope='module')
def caltech_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cls') / 'caltech')
    write_toy_folders(root, '101_ObjectCategories', ['accordion', 'airplanes', 'anchor'], per_class=10, size=40,
                      extra_folders=['BACKGROUND_Google'])
    return root


def tiny_classifier(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ImageClassifier', backbone=TINY_BACKBONE, num_classes=10, in_channels=64,
                              **kwargs))
    model.init_weights()
    return model


def batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        s = BaseDataElement()
        s.gt_label = torch.tensor([i % 10])
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


# -- datasets -----------------------------------------------------------------------------------------
def test_cifar_pickles_read_in_the_real_layout(cifar_root):
    init_default_scope('mmdet')
    train = DATASETS.build(dict(type='CIFAR10', data_root=cifar_root, split='train',
                                pipeline=[dict(type='PackClsInputs')]))
    test = DATASETS.build(dict(type='CIFAR10', data_root=cifar_root, split='test'))
    assert len(train) == 120 and len(test) == 40 and train.metainfo['classes'][0] == 'class_0'
    item = train[0]
    assert item['inputs'].shape == (3, 32, 32) and item['inputs'].dtype == torch.uint8
    # The pixels are the batch file's row, RGB planes to HWC.
    with open(osp.join(cifar_root, 'cifar-10-batches-py', 'data_batch_1'), 'rb') as f:
        raw = pickle.load(f, encoding='bytes')
    assert torch.equal(item['inputs'], torch.from_numpy(raw[b'data'][0].reshape(3, 32, 32)))
    assert int(item['data_samples'].gt_label) == raw[b'labels'][0]
    c100 = DATASETS.build(dict(type='CIFAR100', data_root=cifar_root, split='train'))
    assert len(c100) == 100 and len(c100.metainfo['classes']) == 100


def test_missing_data_names_the_layout_and_the_source(tmp_path):
    init_default_scope('mmdet')
    with pytest.raises(UserError, match=r'cifar-10-batches-py/batches.meta is missing; CIFAR10 is expected as '
                                        r'<data_root>/cifar-10-batches-py/\{data_batch_1,.*download_data.sh cifar10'):
        DATASETS.build(dict(type='CIFAR10', data_root=str(tmp_path)))
    with pytest.raises(UserError, match='holds no class folders; Caltech-101 is expected as .*data.caltech.edu'):
        DATASETS.build(dict(type='Caltech101', data_root=str(tmp_path)))


def test_caltech_split_is_fixed_disjoint_and_complete(caltech_root):
    init_default_scope('mmdet')
    train = DATASETS.build(dict(type='Caltech101', data_root=caltech_root, split='train'))
    test = DATASETS.build(dict(type='Caltech101', data_root=caltech_root, split='test'))
    again = DATASETS.build(dict(type='Caltech101', data_root=caltech_root, split='test'))
    ids = lambda d: [d.get_data_info(i)['img_id'] for i in range(len(d))]  # noqa: E731
    assert train.metainfo['classes'] == ('accordion', 'airplanes', 'anchor')  # BACKGROUND_Google left out
    assert (len(train), len(test)) == (21, 9) and ids(test) == ids(again) and not set(ids(train)) & set(ids(test))
    other_seed = DATASETS.build(dict(type='Caltech101', data_root=caltech_root, split='test', seed=1))
    assert ids(other_seed) != ids(test)
    everything = DATASETS.build(dict(type='ClassFolderDataset', data_root=caltech_root,
                                     data_prefix='101_ObjectCategories'))
    assert len(everything) == 40 and len(everything.metainfo['classes']) == 4


def test_duplicated_dataset_same_content_distinct_indices(cifar_root):
    init_default_scope('mmdet')
    dup = DATASETS.build(dict(type='DuplicatedDataset', times=3, dataset=dict(
        type='CIFAR10', data_root=cifar_root, pipeline=[dict(type='PackClsInputs')])))
    assert len(dup) == 360
    assert torch.equal(dup[5]['inputs'], dup[125]['inputs']) and torch.equal(dup[5]['inputs'], dup[245]['inputs'])
    assert [dup.get_data_info(i)['img_id'] for i in (5, 125, 245)] == ['train_5#0', 'train_5#1', 'train_5#2']


def test_transforms_crop_pad_and_flip():
    from mmal.datasets import RandomCropPad
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    np.random.seed(0)
    crops = [RandomCropPad(32, padding=4)(dict(img=img))['img'] for _ in range(20)]
    assert all(c.shape == (32, 32, 3) for c in crops) and any((c == 0).all(axis=2).any() for c in crops)
    with pytest.raises(ValueError, match='smaller than the 64x64 crop; resize it first'):
        RandomCropPad(64)(dict(img=img))


# -- models -----------------------------------------------------------------------------------------
def test_resnet18_forms():
    cifar = MODELS.build(dict(type='CIFARResNet', depth=18, out_indices=(0, 1, 2, 3)))
    shapes = [tuple(s.shape) for s in cifar(torch.zeros(1, 3, 32, 32))]
    assert shapes == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4)]  # no stride in the stem
    assert cifar.conv1.kernel_size == (3, 3) and sum(p.numel() for p in cifar.parameters()) == 11168832
    standard = MODELS.build(dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_eval=False))
    assert tuple(standard(torch.zeros(1, 3, 224, 224))[-1].shape) == (1, 512, 7, 7)


def test_adapter_outputs_feed_every_scorer():
    model = tiny_classifier(dropout=0.3, loss_prediction=dict(in_channels=(8, 16, 32, 64), hidden=16))
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    data = batch()
    for name in ['Entropy', 'VariationRatio', 'Margin', 'BALD', 'MCVariationRatio', 'Consistency', 'LossPrediction']:
        scorer = SCORERS.build(dict(type=name))
        calls.clear()
        out = ClassificationAdapter(model, scorer.requires, mc_samples=5)(data)
        values = scorer(out)
        assert values.shape[0] == 4 and torch.isfinite(values).all(), name
        assert len(calls) == (2 if 'flip_log_probs' in scorer.requires else 1), name  # the backbone runs once
    out = ClassificationAdapter(model, {'probs', 'mc_probs', 'features'}, mc_samples=6)(data)
    assert torch.allclose(out['probs'].sum(-1), torch.ones(4))
    assert out['mc_probs'].shape == (6, 4, 10) and out['features'].shape == (4, 64)
    assert not torch.allclose(out['mc_probs'][0], out['mc_probs'][1])  # dropout redrawn per sample


def test_adapter_errors_name_the_fix():
    with pytest.raises(ValueError, match='Monte-Carlo outputs need dropout: give the model dropout=0.3'):
        ClassificationAdapter(tiny_classifier(), {'mc_probs'})
    with pytest.raises(TypeError, match=r"cannot compute \['pred_loss'\]; .*add loss_prediction to the model"):
        ClassificationAdapter(tiny_classifier(), {'pred_loss'})


def test_llal_loss_and_detach_hook():
    from mmal.engine import LLALDetachHook
    model = tiny_classifier(loss_prediction=dict(in_channels=(8, 16, 32, 64), hidden=16))
    model.train()
    data = model.data_preprocessor(batch(6), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_llal'}
    model.zero_grad()
    losses['loss_llal'].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0  # before the detach epoch it trains the backbone

    class Runner:  # the two attributes the hook reads
        epoch = 120
    Runner.model = model
    LLALDetachHook(epoch=120).before_train_epoch(Runner)
    assert model.llal_detached
    model.zero_grad()
    model(**data, mode='loss')['loss_llal'].backward()
    assert model.backbone.conv1.weight.grad is None or model.backbone.conv1.weight.grad.abs().sum() == 0
    assert model.loss_prediction.out.weight.grad.abs().sum() > 0  # the module itself still learns


def test_accuracy_metric():
    metric = METRICS.build(dict(type='ClassificationAccuracy', topk=(1, 2)))
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    metric.process({}, [dict(pred_score=s, gt_label=torch.tensor([y])) for s, y in zip(scores, [0, 1, 0])])
    assert metric.evaluate(3) == {'accuracy/top1': pytest.approx(100 / 3), 'accuracy/top2': pytest.approx(200 / 3)}


# -- configs -----------------------------------------------------------------------------------------
def test_every_table1_config_exists_with_the_study_settings():
    found = {osp.basename(p)[:-3] for p in glob.glob(osp.join(REPO, 'configs', '*.py'))
             if not osp.basename(p).startswith(('ssd', 'demo'))}
    assert {f'{d}_{m}' for d in DATASET_SETTINGS for m in METHODS} <= found
    for dataset, (initial, cycles, classes) in DATASET_SETTINGS.items():
        for method in METHODS:
            cfg = Config.fromfile(osp.join(REPO, 'configs', f'{dataset}_{method}.py'))
            al, opt = cfg.active_learning, cfg.optim_wrapper.optimizer
            assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.1, 0.9, 5e-4)
            assert cfg.train_cfg.max_epochs == 200 and cfg.param_scheduler[0].milestones == [160]
            assert cfg.train_dataloader.batch_size == 128 and cfg.model.num_classes == classes
            assert (al.initial_labeled, al.budget, al.num_cycles, al.retrain, al.num_trials) == (
                initial, 1000, cycles, 'scratch', 5)
    bald = Config.fromfile(osp.join(REPO, 'configs', 'cifar10_bald.py'))
    assert bald.model.dropout > 0 and bald.active_learning.scorer.type == 'BALD'
    llal = Config.fromfile(osp.join(REPO, 'configs', 'caltech256_llal.py'))
    assert llal.custom_hooks == [dict(type='LLALDetachHook', epoch=120)]


def test_ablation_configs():
    def al(name):
        return Config.fromfile(osp.join(REPO, 'configs', 'ablations', f'{name}.py')).active_learning
    for b in (500, 1000, 2000):
        a = al(f'cifar10_entropy_budget{b}')
        assert (a.initial_labeled, a.budget, a.initial_labeled + a.budget * (a.num_cycles - 1)) == (b, b, 20000)
    assert al('cifar10_entropy_finetune').retrain == 'finetune' and al('cifar10_entropy_scratch').retrain == 'scratch'
    assert al('cifar10_entropy_no_diversity').selection == dict(type='TopK')  # no subset inherited
    assert al('cifar10_entropy_diversity').selection == dict(type='RandomSubsetTopK', subset_size=10000)
    for data in ('cifar10', 'cifar10x2', 'cifar10x5'):  # the batch-aware selectors beside the study's methods
        assert (al(f'{data}_badge').scorer, al(f'{data}_badge').selection) == (None, dict(type='BADGE'))
        assert (al(f'{data}_typiclust').scorer, al(f'{data}_typiclust').selection) == (None, dict(type='TypiClust'))
    for k in (2, 5):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'ablations', f'cifar10x{k}_entropy_no_diversity.py'))
        pool = cfg.train_dataloader.dataset
        assert (pool.type, pool.times, pool.dataset.type, pool.dataset.split) == ('DuplicatedDataset', k, 'CIFAR10',
                                                                                   'train')


# -- the driver ----------------------------------------------------------------------------------------
def write_cls_config(tmp_path, data_root, name, model=None, **al):
    settings = dict(initial_labeled=20, budget=10, num_cycles=2, batch_size=32, scorer=dict(type='Entropy'))
    settings.update(al)
    path = tmp_path / name
    path.write_text(f'''
_base_ = {osp.join(REPO, 'configs', 'demo', 'resnet_toycifar_al.py')!r}
data_root = {data_root!r}
train_dataloader = dict(batch_size=10, dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
model = dict(backbone=dict(base_channels=8), in_channels=64, **{model or {}!r})
train_cfg = dict(max_epochs=2)
param_scheduler = []
log_level = 'WARNING'
active_learning = {settings!r}
''')
    return str(path)


@pytest.mark.parametrize('scorer, extra', [
    ('Entropy', {}),
    (None, dict(selection='coreset')),
    ('LossPrediction', dict(model=dict(loss_prediction=dict(in_channels=(8, 16, 32, 64), hidden=16)))),
    ('BALD', dict(model=dict(dropout=0.3), adapter=dict(mc_samples=4))),
])
def test_al_train_runs_classification_cycles(cifar_root, tmp_path, scorer, extra):
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', scorer=scorer and dict(type=scorer), **extra)
    work = tmp_path / 'work'
    proc = al_train(config, work)
    assert '[al] trial 0 cycle 1: 30 labeled, accuracy/top1' in proc.stdout
    first = json.loads((work / 'trial_0' / 'cycle_0' / 'labeled.json').read_text())['indices']
    selected = json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert len(indices(selected)) == 10 and not set(indices(selected)) & set(first)
    assert (work / 'report' / 'curves.png').is_file()


def test_al_train_missing_cifar_is_one_sentence(cifar_root, tmp_path, capsys):
    script = tool('al_train')
    config = write_cls_config(tmp_path, str(tmp_path / 'nowhere'), 'cls.py')
    err = fails(script, [config, '--work-dir', tmp_path / 'work'], capsys)
    assert 'does not exist; put the dataset there in the layout <data_root>/cifar-10-batches-py/' in err
    assert not (tmp_path / 'work').exists()
    # The root exists but a batch file is missing: one sentence, and still nothing written.
    broken = tmp_path / 'broken'
    shutil.copytree(osp.join(cifar_root, 'cifar-10-batches-py'), broken / 'cifar-10-batches-py')
    (broken / 'cifar-10-batches-py' / 'data_batch_3').unlink()
    config = write_cls_config(tmp_path, str(broken), 'broken.py')
    assert 'data_batch_3 is missing; CIFAR10 is expected as' in fails(script, [config, '--work-dir',
                                                                              tmp_path / 'work2'], capsys)
    assert not (tmp_path / 'work2').exists()


@pytest.mark.parametrize('config', [f'{d}_{m}' for d in ('cifar10', 'caltech101') for m in METHODS])
def test_config_model_scores_a_batch(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{config}.py'))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    al = cfg.active_learning
    method = build_method(al.scorer, al.get('selection'), subset_size=al.get('subset_size'))
    size = 32 if config.startswith('cifar') else 224
    out = ClassificationAdapter(model, method.requires, **al.get('adapter', {}))(batch(2, size))
    values = method.scorer(out) if method.scorer else method.selector.image_inputs(out)['features']
    assert values.shape[0] == 2 and torch.isfinite(values).all()


def test_two_process_classification_run_selects_like_one(cifar_root, tmp_path):
    config = write_cls_config(tmp_path, cifar_root, 'cls.py', num_cycles=2,
                              model=dict(loss_prediction=dict(in_channels=(8, 16, 32, 64), hidden=16)),
                              scorer=dict(type='LossPrediction'))
    dist_train(config, tmp_path / 'dist')
    selected = json.loads((tmp_path / 'dist' / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert len(set(indices(selected))) == 10
    # The same checkpoint scored by one process picks the same images.
    single = tmp_path / 'single'
    shutil.copytree(tmp_path / 'dist', single)
    (single / 'trial_0' / 'cycle_0' / 'selected.json').unlink()
    shutil.rmtree(single / 'trial_0' / 'cycle_1')
    al_train(config, single, '--resume')
    again = json.loads((single / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert indices(again) == indices(selected)
