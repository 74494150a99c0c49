"""LLAL on SSD: own-image loss targets, the ranking loss, and the gradient stop."""
import os.path as osp

import pytest
import torch
from conftest import REPO, at_iteration, toy_ssd_cfg
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmal.models import DetectionAdapter, margin_ranking_loss
from mmal.registry import SCORERS

LLAL_CONFIG = osp.join(REPO, 'configs', 'demo', 'ssd_toyvoc_llal.py')


def test_margin_ranking_loss_exact():
    target = torch.tensor([3.0, 0.5, 1.0, 2.0])  # pairs (0, 3) and (1, 2)
    ordered = torch.tensor([5.0, 0.0, 2.0, 1.0])  # right order, margins 4 and 2: no loss
    assert margin_ranking_loss(ordered, target).item() == 0.0
    wrong = torch.tensor([1.0, 0.0, 0.0, 1.5])  # pair (0,3): 1 - (1 - 1.5) = 1.5; pair (1,2): 1 - (0 - 0)·(-1) = 1
    assert margin_ranking_loss(wrong, target).item() == pytest.approx((1.5 + 1.0) / 2)
    assert margin_ranking_loss(torch.tensor([2.0]), torch.tensor([1.0])).item() == 0.0


@pytest.fixture(scope='module')
def llal_batch(toy_voc_root):
    cfg = Config.fromfile(LLAL_CONFIG)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = toy_voc_root
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] != 'RandomFlip']
    dataset = DATASETS.build(ds_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(4)]), True)
    return model, batch


def test_targets_are_each_images_own_loss(llal_batch):
    model, batch = llal_batch
    captured = {}
    real = model.loss_prediction.forward

    def spy(feats):
        out = real(feats)
        captured['pred'] = out
        return out

    model.loss_prediction.forward = spy
    try:
        losses = model.loss(batch['inputs'], batch['data_samples'])
    finally:
        model.loss_prediction.forward = real
    assert set(losses) >= {'loss_cls', 'loss_bbox', 'loss_llal'} and captured['pred'].shape == (4, )
    # The target of image i is the head's loss on a batch made of image i alone (BN frozen, so the
    # features do not depend on the batch).
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(batch['inputs'])
        outs = model.bbox_head(feats)
        gts, ignores, metas = unpack_gt_instances(batch['data_samples'])
        own = torch.stack([model._image_loss(outs, gts, ignores, metas, i) for i in range(4)])
        alone = model.bbox_head.loss(model.extract_feat(batch['inputs'][1:2]), batch['data_samples'][1:2])
    model.train()
    alone_total = sum(t.sum() for v in alone.values() for t in (v if isinstance(v, list) else [v]))
    assert own[1].item() == pytest.approx(alone_total.item(), rel=1e-4)
    assert len(set(round(v, 4) for v in own.tolist())) == 4  # one target per image, not the batch mean


def _backbone_grad(model, batch):
    model.zero_grad()
    model.loss(batch['inputs'], batch['data_samples'])['loss_llal'].backward()
    grad = model.backbone.stages[0][0].conv.weight.grad
    return 0.0 if grad is None else grad.abs().sum().item()


def test_gradient_into_the_detector_stops_after_the_set_iteration(llal_batch):
    model, batch = llal_batch
    model.detach_after_iter = 2
    for iteration, trains_backbone in ((0, True), (1, True), (2, False), (7, False)):
        with at_iteration(iteration):  # the runner's iteration, not a count kept in the model
            assert (_backbone_grad(model, batch) > 0) == trains_backbone, iteration
    assert model.loss_prediction.out.weight.grad.abs().sum() > 0  # the module itself still learns


def test_loss_prediction_scorer_reads_predicted_losses(llal_batch):
    model, batch = llal_batch
    model.eval()
    scorer = SCORERS.build(dict(type='LossPrediction'))
    # The batch is already normalised; an identity preprocessor hands it to the adapter as it is.
    raw = dict(inputs=batch['inputs'], data_samples=batch['data_samples'])
    model.data_preprocessor.forward = lambda data, training=False: data
    try:
        scores = scorer(DetectionAdapter(model, scorer.requires)(raw))
    finally:
        del model.data_preprocessor.forward
    with torch.no_grad():
        want = model.predict_loss(model.extract_feat(batch['inputs']))
    assert scores.shape == (4, ) and torch.allclose(scores, want)


def test_llal_trains_and_selects_through_the_hook(toy_voc_root, tmp_path):
    import json

    from mmengine.runner import Runner
    cfg = toy_ssd_cfg(toy_voc_root, str(tmp_path), epochs=1, config=LLAL_CONFIG)
    pool = osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt')
    cfg.custom_hooks = [dict(type='ActiveLearningHook', pool=pool, budget=5, scorer=dict(type='LossPrediction'),
                             progress=False)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == len(runner.train_dataloader)
    with open(tmp_path / 'acquisition.json') as f:
        picks = json.load(f)['selected']
    assert len(picks) == 5 and [p['score'] for p in picks] == sorted((p['score'] for p in picks), reverse=True)
