"""AL + consistency-based SSL: CSD for SSD, MixMatch for the classifier, their data, one cycle each."""
import json
import os.path as osp

import pytest
import torch
from conftest import REPO, TOY_SSD_CONFIG, al_train, at_iteration, dist_train, indices, labeled_sets, write_config
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement, InstanceData

from mmal.active import ALSettings
from mmal.datasets import LabeledRatioSampler
from mmal.datasets.toy_cls import write_toy_cifar
from mmal.errors import UserError
from mmal.models import ClassificationAdapter
from mmal.models.ssl_losses import background_elimination, csd_consistency, csd_weight, linear_ramp, mixup, sharpen
from mmal.registry import SCORERS


def csd_model():
    torch.manual_seed(0)
    cfg = Config.fromfile(TOY_SSD_CONFIG).model
    cfg.type = 'CSDSingleStageDetector'
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()  # BatchNorm on running statistics: images do not mix inside the network


def det_batch(labeled, size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for flag in labeled:
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                        pad_shape=(size, size), batch_input_shape=(size, size), labeled=flag))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[20.0, 30.0, 70.0, 90.0]]), labels=torch.tensor([1]))
        samples.append(s)
    inputs = torch.rand(len(labeled), 3, size, size, generator=g)
    return inputs, samples


# -- the losses ----------------------------------------------------------------------------------------
def test_csd_consistency_is_zero_for_mirrored_identical_predictions():
    probs = torch.softmax(torch.randn(2, 50, 6), -1)
    deltas = torch.randn(2, 50, 4)
    cls, loc, mask = csd_consistency(probs, probs.clone(), deltas, deltas * torch.tensor([-1.0, 1, 1, 1]))
    assert cls == 0 and loc == 0 and mask.any()
    cls, loc, _ = csd_consistency(probs, probs.roll(1, dims=1), deltas, deltas)  # a real disagreement
    assert cls > 0 and loc > 0


def test_background_elimination_masks_what_it_should():
    probs = torch.tensor([[[0.6, 0.1, 0.3],    # foreground 0.6 > background 0.3: kept
                           [0.2, 0.2, 0.6],    # background wins: dropped
                           [0.3, 0.3, 0.4],    # background wins: dropped
                           [0.1, 0.5, 0.4]]])  # kept
    assert background_elimination(probs).tolist() == [[True, False, False, True]]
    other = probs.clone()
    other[0, 1:3] = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # the flip disagrees on dropped anchors only
    deltas = torch.zeros(1, 4, 4)
    cls, loc, mask = csd_consistency(probs, probs.where(~torch.tensor([[0, 1, 1, 0]]).bool()[..., None], other),
                                     deltas, deltas)
    assert cls == 0 and loc == 0 and mask.sum() == 2


def test_schedules():
    assert csd_weight(0, 100, 100, 1000) == pytest.approx(torch.exp(torch.tensor(-5.0)).item())
    assert csd_weight(100, 100, 100, 1000) == 1.0 and csd_weight(900, 100, 100, 1000) == 1.0
    assert csd_weight(1000, 100, 100, 1000) == pytest.approx(torch.exp(torch.tensor(-12.5)).item())
    assert [linear_ramp(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    p = torch.tensor([[0.5, 0.3, 0.2]])
    assert torch.allclose(sharpen(p, 1.0), p) and sharpen(p, 0.5)[0, 0] > 0.5
    x, y = torch.arange(4.0).view(4, 1), torch.eye(4)
    mx, my = mixup(x, y, torch.tensor([1, 0, 3, 2]), torch.tensor([0.2, 1.0, 0.5, 0.7]))
    assert torch.allclose(mx.view(-1), torch.tensor([0.2, 1.0, 2.5, 2.7]))  # λ' = max(λ, 1-λ) leans to its own row
    assert torch.allclose(my.sum(-1), torch.ones(4))


# -- CSD -------------------------------------------------------------------------------------------------
def test_csd_losses_are_zero_for_a_flip_invariant_detector():
    model = csd_model()
    for conv in model.bbox_head.cls_convs:  # the same class prediction everywhere, no box offsets
        torch.nn.init.zeros_(conv[0].weight)
        torch.nn.init.normal_(conv[0].bias)
    for conv in model.bbox_head.reg_convs:
        torch.nn.init.zeros_(conv[0].weight)
        torch.nn.init.zeros_(conv[0].bias)
    inputs, samples = det_batch([True, False])
    losses = model.loss(inputs, samples)
    assert losses['loss_csd_cls'] == 0 and losses['loss_csd_loc'] == 0


def test_csd_schedule_is_the_runners_iteration_so_a_finetuned_model_starts_its_ramp_again():
    model = csd_model()
    assert not [k for k in model.state_dict() if k.endswith('_iter')]  # no counter travels in checkpoints
    inputs, samples = det_batch([True, False])
    model.ramp_up_iters, model.ramp_down_iters = 100, 100
    losses = {}
    for iteration in (0, 500, 950):
        with at_iteration(iteration, max_iters=1000):
            losses[iteration] = model.loss(inputs, samples)['loss_csd_cls'].item()
    full = losses[500]
    assert losses[0] == pytest.approx(full * csd_weight(0, 100, 100, 1000), rel=1e-4)
    assert losses[950] == pytest.approx(full * csd_weight(950, 100, 100, 1000), rel=1e-4) and losses[950] < full


def test_csd_gradients_reach_only_what_they_should():
    model = csd_model()
    inputs, samples = det_batch([True, False, True])
    inputs.requires_grad_(True)
    with at_iteration(10 ** 6):  # past the ramp-up
        losses = model.loss(inputs, samples)
    supervised = sum(v.sum() if torch.is_tensor(v) else sum(t.sum() for t in v)
                     for k, v in losses.items() if k in ('loss_cls', 'loss_bbox'))
    grad, = torch.autograd.grad(supervised, inputs, retain_graph=True)
    assert grad[1].abs().sum() == 0 and grad[0].abs().sum() > 0  # no supervision from the unlabeled image
    grad, = torch.autograd.grad(losses['loss_csd_cls'] + losses['loss_csd_loc'], inputs)
    assert grad[1].abs().sum() > 0  # the consistency losses do train on it
    # The unlabeled image's boxes are never read: other boxes give the same supervised loss.
    samples[1].gt_instances = InstanceData(bboxes=torch.tensor([[0.0, 0.0, 127.0, 127.0]]), labels=torch.tensor([4]))
    again = model.loss(inputs.detach(), samples)
    assert torch.allclose(sum(t.sum() for t in again['loss_cls']), sum(t.sum() for t in losses['loss_cls']))


# -- MixMatch -------------------------------------------------------------------------------------------
def mixmatch(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='MixMatchClassifier', num_classes=10, in_channels=64,
                              backbone=dict(type='CIFARResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3)),
                              **kwargs))
    model.init_weights()
    return model


def cls_batch(labels, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for y in labels:
        s = BaseDataElement(metainfo=dict(labeled=y is not None))
        if y is None:
            inputs.append(torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8))
        else:
            s.gt_label = torch.tensor([y])
            inputs.append(torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def test_mixmatch_views_guesses_and_losses():
    model = mixmatch(ramp_up_iters=0)
    model.train()
    data = model.data_preprocessor(cls_batch([3, None, 5, None], k=2), True)
    assert data['inputs'].shape == (6, 3, 32, 32)  # 2 labeled + 2 unlabeled x 2 views
    assert [s.metainfo['views'] for s in data['data_samples']] == [1, 2, 1, 2]
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_x', 'loss_u'} and losses['loss_u'] > 0 and torch.isfinite(losses['loss_x'])
    u = data['inputs'][1:3].unsqueeze(0)
    guess = model.guess_labels(u)
    assert not guess.requires_grad and torch.allclose(guess.sum(-1), torch.ones(1))  # no gradient into targets
    same = model.guess_labels(torch.cat([u[:, :1], u[:, :1]], 1))  # identical augmentations
    assert torch.allclose(same, sharpen(model.logits(u[0, :1]).softmax(-1), 0.5).detach(), atol=1e-6)
    only_labeled = model(**model.data_preprocessor(cls_batch([1, 2]), True), mode='loss')
    assert only_labeled['loss_u'] == 0


def test_inconsistency_scorer_is_zero_for_identical_views():
    model = mixmatch()
    torch.nn.init.zeros_(model.fc.weight)  # the same prediction for every input
    scorer = SCORERS.build(dict(type='Inconsistency'))
    data = cls_batch([1, 2, 3])
    flat = ClassificationAdapter(model, scorer.requires, aug_views=3)(data)
    assert flat['aug_probs'].shape == (3, 3, 10) and (scorer(flat) == 0).all()
    varied = scorer(ClassificationAdapter(mixmatch(), scorer.requires, aug_views=3)(data))
    assert (varied > 0).all()
    with pytest.raises(TypeError, match='use the Consistency scorer'):
        from mmal.models import DetectionAdapter
        DetectionAdapter(csd_model(), scorer.requires)


# -- the training set ------------------------------------------------------------------------------------
def test_semi_supervised_subset_and_ratio_sampler(tmp_path):
    init_default_scope('mmdet')
    root = write_toy_cifar(str(tmp_path / 'c'), 10, train_per_class=3, test_per_class=1)
    (tmp_path / 'labeled.json').write_text(json.dumps(dict(indices=[4, 9, 20])))
    pool = dict(type='CIFAR10', data_root=root, pipeline=[dict(type='RandomCropPad', size=32, padding=4),
                                                         dict(type='PackClsInputs')])
    data = DATASETS.build(dict(type='SemiSupervisedSubset', dataset=pool, unlabeled_views=2,
                               indices_file=str(tmp_path / 'labeled.json')))
    assert (len(data), data.num_labeled) == (30, 3)
    labeled, unlabeled = data[0], data[3]
    assert labeled['data_samples'].metainfo['labeled'] and int(labeled['data_samples'].gt_label) >= 0
    assert not unlabeled['data_samples'].metainfo['labeled'] and 'gt_label' not in unlabeled['data_samples']
    assert unlabeled['inputs'].shape == (2, 3, 32, 32) and data.get_data_info(3)['img_id'] == 'train_0'
    sampler = LabeledRatioSampler(data, batch_size=8, labeled_ratio=0.25, seed=0)
    stream = iter(sampler)
    for _ in range(10):
        batch = [next(stream) for _ in range(8)]
        assert sum(i < 3 for i in batch) == 2 and all(0 <= i < 30 for i in batch)


def test_settings_budget_schedule_and_ssl_checks(toy_voc_root, tmp_path):
    cfg = Config(dict(active_learning=dict(initial_labeled=250, budget=[250, 500, 1000, 2000], num_cycles=5)))
    al = ALSettings.from_cfg(cfg)
    assert [al.budget_at(k) for k in range(4)] == [250, 500, 1000, 2000]
    with pytest.raises(UserError, match='budget lists 2 counts for 4 acquisitions'):
        ALSettings.from_cfg(Config(dict(active_learning=dict(initial_labeled=1, budget=[1, 2], num_cycles=5))))
    with pytest.raises(UserError, match="semi_supervised has unknown keys \\['ratio'\\]"):
        ALSettings.from_cfg(Config(dict(active_learning=dict(initial_labeled=1, budget=1, num_cycles=2,
                                                             semi_supervised=dict(ratio=0.5)))))
    epoch_based = tmp_path / 'epoch.py'
    epoch_based.write_text(f'_base_ = {osp.join(REPO, "configs", "demo", "resnet_toycifar_al.py")!r}\n'
                           'active_learning = dict(semi_supervised=dict())\n')
    proc = al_train(str(epoch_based), tmp_path / 'w', check=False)
    assert proc.returncode == 2 and "semi_supervised needs train_cfg = dict(type='IterBasedTrainLoop'" in proc.stderr


def test_ssl_configs():
    for method, scorer in [('random', 'Random'), ('entropy', 'Entropy'), ('inconsistency', 'Consistency')]:
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'ssl', f'ssd_voc_csd_{method}.py'))
        al = cfg.active_learning
        assert cfg.model.type == 'CSDSingleStageDetector' and al.scorer.type == scorer
        assert al.initial_labeled + al.budget * (al.num_cycles - 1) == 7000 and al.semi_supervised.labeled_ratio == 0.5
    for method, scorer in [('random', 'Random'), ('entropy', 'Entropy'), ('inconsistency', 'Inconsistency')]:
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'ssl', f'cifar10_mixmatch_{method}.py'))
        al = cfg.active_learning
        assert (cfg.model.type, cfg.model.temperature, cfg.model.alpha) == ('MixMatchClassifier', 0.5, 0.75)
        assert al.scorer.type == scorer and al.semi_supervised.unlabeled_views == 2
        assert al.initial_labeled + sum(al.budget) == 4000 and cfg.train_cfg.max_iters == 1024 * 1024


# -- one AL + SSL run of each kind -------------------------------------------------------------------------
def test_csd_al_run(toy_voc_root, tmp_path):
    config = write_config(tmp_path, toy_voc_root, num_cycles=2, scorer=dict(type='Consistency'),
                          semi_supervised=dict(labeled_ratio=0.5, unlabeled_pipeline=[
                              dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=False),
                              dict(type='PackDetInputs')]))
    text = open(config).read() + ("model = dict(type='CSDSingleStageDetector', max_iters=3, ramp_up_iters=1, "
                                  "ramp_down_iters=1)\n")
    open(config, 'w').write(text)
    work = tmp_path / 'w'
    proc = al_train(config, work)
    assert '[al] trial 0 cycle 1: 14 labeled' in proc.stdout
    assert [len(s) for s in labeled_sets(work, cycles=2)] == [8, 14]
    selected = json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert selected['scorer']['type'] == 'Consistency' and len(indices(selected)) == 6


def write_mixmatch_config(tmp_path, max_iters):
    """The toy MixMatch config on a 60-image toy CIFAR-10, 10 -> 20 labeled, ``max_iters`` per cycle."""
    root = write_toy_cifar(str(tmp_path / 'c'), 10, train_per_class=6, test_per_class=2)
    config = tmp_path / 'mm.py'
    config.write_text(f'''
_base_ = {osp.join(REPO, 'configs', 'demo', 'resnet_toycifar_mixmatch.py')!r}
data_root = {root!r}
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
model = dict(backbone=dict(base_channels=8), in_channels=64)
max_iters = {max_iters}
train_cfg = dict(max_iters=max_iters)
log_level = 'WARNING'
active_learning = dict(initial_labeled=10, budget=[10], num_cycles=2)
''')
    return str(config)


def test_mixmatch_al_run(tmp_path):
    config = write_mixmatch_config(tmp_path, max_iters=4)
    work = tmp_path / 'w'
    proc = al_train(config, work)
    assert '[al] trial 0 cycle 1: 20 labeled, accuracy/top1' in proc.stdout
    selected = json.loads((work / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert selected['scorer']['type'] == 'Inconsistency' and len(indices(selected)) == 10


def test_two_process_mixmatch_run(tmp_path):
    config = write_mixmatch_config(tmp_path, max_iters=3)
    proc = dist_train(config, tmp_path / 'w')
    assert proc.stdout.count('[al] trial 0 cycle 1: 20 labeled') == 1
