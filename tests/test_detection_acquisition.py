"""Detection acquisition: the adapter's outputs, known answers, and the hook in two mmdet families."""
import json
import os.path as osp

import pytest
import torch
from conftest import REPO, TOY_SSD_CONFIG, toy_ssd_cfg
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import Runner

from mmal.models import DetectionAdapter
from mmal.registry import SCORERS
from mmal.scoring import functional as F

ALL_OUTPUTS = {'probs', 'log_probs', 'flip_log_probs', 'mc_probs', 'features', 'last_layer_input'}


def _batch(n=3, size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)]
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0))
    return dict(inputs=imgs, data_samples=[DetDataSample(metainfo=meta) for _ in imgs])


@pytest.fixture(scope='module')
def ssd():
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TOY_SSD_CONFIG).model)
    model.init_weights()
    return model.eval()


def test_outputs_have_the_declared_shapes(ssd):
    out = DetectionAdapter(ssd, ALL_OUTPUTS, box_mode='anchors', mc_samples=4)(_batch())
    num_anchors = sum(ssd.bbox_head.num_base_priors[i] * s * s for i, s in enumerate([16, 8, 4, 2]))
    m = 3 * num_anchors
    assert out['num_images'] == 3 and out['image_index'].shape == (m, )
    assert out['probs'].shape == out['flip_log_probs'].shape == (m, 6) and out['mc_probs'].shape == (4, m, 6)
    assert out['features'].shape == (3, 128) and out['last_layer_input'].shape == (m, 64 + 96 + 128 + 128)
    assert torch.allclose(out['log_probs'].exp(), out['probs'])
    assert torch.allclose(out['probs'].sum(-1), torch.ones(m))


def test_only_what_the_scorer_requires_is_computed(ssd):
    out = DetectionAdapter(ssd, SCORERS.build(dict(type='Entropy')).requires)(_batch())
    assert set(out) == {'num_images', 'image_index', 'probs'}
    assert set(DetectionAdapter(ssd, frozenset())(_batch())) == {'num_images'}  # random: no forward


def test_detections_mode_keeps_the_boxes_mmdet_predicts(ssd):
    ssd.bbox_head.test_cfg.update(score_thr=0.2, nms_pre=1000, max_per_img=50)
    batch = _batch(4)
    with torch.no_grad():
        predicted = ssd.test_step(batch)
    adapter = DetectionAdapter(ssd, {'probs'}, score_thr=0.2, nms_iou=0.45, max_per_img=50)
    detections = adapter.detect(batch)
    for mine, own in zip(detections, predicted):  # the test_cfg overrides reach the post-processing
        theirs = own.pred_instances
        assert torch.equal(mine.bboxes, theirs.bboxes) and torch.equal(mine.scores, theirs.scores)
    out = adapter(batch)
    counts = torch.bincount(out['image_index'], minlength=4).tolist()
    assert counts == [len(d.sources.unique()) for d in detections] and sum(counts) > 0  # one row per anchor
    # Each kept box is scored on its anchor's full distribution, whose top class passed the threshold.
    assert (out['probs'][:, :-1].amax(-1) >= 0.2).all()


def test_consistency_of_a_flip_invariant_model_is_zero(ssd):
    model = MODELS.build(Config.fromfile(TOY_SSD_CONFIG).model)
    model.init_weights()
    model.eval()
    for conv in model.bbox_head.cls_convs:  # bias only: the same prediction everywhere
        torch.nn.init.zeros_(conv[0].weight)
        torch.nn.init.normal_(conv[0].bias)
    scorer = SCORERS.build(dict(type='Consistency'))
    invariant = scorer(DetectionAdapter(model, scorer.requires, box_mode='anchors')(_batch()))
    assert invariant.shape == (3, ) and (invariant == 0).all()
    varied = scorer(DetectionAdapter(ssd, scorer.requires, box_mode='anchors')(_batch()))
    assert (varied > 0).all()  # a real model is not flip-invariant


def test_bald_without_dropout_is_zero(ssd):
    for name in ('BALD', 'MCVariationRatio'):
        scorer = SCORERS.build(dict(type=name))
        out = DetectionAdapter(ssd, scorer.requires, box_mode='anchors', dropout_p=0.0, mc_samples=5)(_batch())
        assert scorer(out).abs().max() < 1e-6, name  # 0 up to float rounding of the mean over T
    scorer = SCORERS.build(dict(type='BALD'))
    out = DetectionAdapter(ssd, scorer.requires, box_mode='anchors', dropout_p=0.3, mc_samples=5)(_batch())
    assert (scorer(out) > 0).all()


@pytest.mark.parametrize('sparse', [True, False])
def test_mc_dropout_runs_backbone_once_and_samples_only_the_classifier(ssd, monkeypatch, sparse):
    from mmal.models.detection.dense import rows
    if not sparse:
        monkeypatch.setattr(rows, 'simple_conv', lambda conv: False)
    calls = {'backbone': 0, 'cls': 0, 'reg': 0}

    def counter(key):
        def hook(*_):
            calls[key] += 1
        return hook

    handles = [ssd.backbone.register_forward_hook(counter('backbone')),
               ssd.bbox_head.cls_convs[0][-1].register_forward_hook(counter('cls')),
               ssd.bbox_head.reg_convs[0].register_forward_hook(counter('reg'))]
    try:
        DetectionAdapter(ssd, {'mc_probs'}, mc_samples=7, score_thr=0.05)(_batch())
    finally:
        for h in handles:
            h.remove()
    # Sparse: the MC samples read the classifier's weights at the kept boxes only, no full-map pass.
    assert calls == {'backbone': 1, 'cls': 1 if sparse else 1 + 7, 'reg': 1}


def test_entropy_scores_match_manual_reduction(ssd):
    batch = _batch()
    out = DetectionAdapter(ssd, {'probs'}, box_mode='anchors')(batch)
    scores = SCORERS.build(dict(type='Entropy', aggregation='mean'))(out)
    per_image = F.entropy(out['probs']).view(3, -1).mean(1)
    assert torch.allclose(scores, per_image)


def _run_with_hook(cfg, work_dir, scorer, budget=6, selection=None, **adapter):
    cfg.custom_hooks = [dict(type='ActiveLearningHook', pool=cfg.pool_list, budget=budget, scorer=scorer,
                             selection=selection, adapter=adapter, progress=False)]
    Runner.from_cfg(cfg).train()
    with open(osp.join(work_dir, 'acquisition.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('scorer,selection', [(dict(type='Entropy'), None), (None, dict(type='KCenterGreedy')),
                                              (dict(type='Random', seed=1), None)])
def test_hook_on_toy_ssd(toy_voc_root, tmp_path, scorer, selection):
    cfg = toy_ssd_cfg(toy_voc_root, str(tmp_path), epochs=1)
    cfg.pool_list = osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt')  # 16 unlabeled images
    result = _run_with_hook(cfg, str(tmp_path), scorer, selection=selection, box_mode='anchors')
    picks = result['selected']
    assert result['pool_size'] == 16 and len(picks) == 6
    assert len({p['index'] for p in picks}) == 6 and all(osp.isfile(p['img_path']) for p in picks)
    assert all(p['img_id'].startswith('test_') for p in picks)  # core-set never picks a labeled image
    if scorer is not None:
        scores = [p['score'] for p in picks]
        assert scores == sorted(scores, reverse=True)


def test_hook_on_mmdet_retinanet(toy_voc_root, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'examples', 'retinanet_r18_toyvoc_al.py'))
    assert cfg.model.bbox_head.type == 'RetinaHead' and cfg.model.bbox_head.loss_cls.use_sigmoid
    cfg.work_dir = str(tmp_path)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = toy_voc_root
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 1
    cfg.log_level = 'WARNING'
    cfg.pool_list = osp.join(toy_voc_root, 'ToyVOC', 'ImageSets', 'Main', 'test.txt')
    result = _run_with_hook(cfg, str(tmp_path), dict(type='Entropy'), box_mode='detections', score_thr=0.05)
    assert result['pool_size'] == 16 and len(result['selected']) == 6


def test_sparse_mc_path_matches_dense_dropout(ssd, monkeypatch):
    from mmal.models.detection.dense import rows
    batch = _batch()
    exact = DetectionAdapter(ssd, {'probs', 'mc_probs'}, score_thr=0.05, dropout_p=0.0, mc_samples=3)(batch)
    assert torch.allclose(exact['mc_probs'], exact['probs'].expand(3, -1, -1), atol=1e-6)  # p=0: exact

    torch.manual_seed(0)
    adapter = DetectionAdapter(ssd, {'mc_probs'}, score_thr=0.05, dropout_p=0.3, mc_samples=400)
    sparse = adapter(batch)['mc_probs']
    monkeypatch.setattr(rows, 'simple_conv', lambda conv: False)
    full = adapter(batch)['mc_probs']
    # Same distribution per box: the Monte-Carlo means and spreads agree.
    assert (sparse.mean(0) - full.mean(0)).abs().max() < 0.02
    assert (sparse.std(0) - full.std(0)).abs().max() < 0.02


def test_hook_names_missing_pool_images_before_training(ssd, tmp_path):
    from types import SimpleNamespace

    from mmal.engine import ActiveLearningHook
    from mmal.errors import UserError
    (tmp_path / 'pool.json').write_text(json.dumps(dict(images=[dict(id=1, file_name='a.jpg'),
                                                                dict(id=2, file_name='b.jpg')])))
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'a.jpg').write_bytes(b'x')
    hook = ActiveLearningHook(pool=str(tmp_path / 'pool.json'), budget=1, scorer=dict(type='Entropy'))
    with pytest.raises(UserError, match=r"2 of 2 pool images do not exist, e.g. .*/a.jpg \(a COCO pool's file "
                                        r"names are relative to the json's folder unless the hook's img_dir says "
                                        r"otherwise\)"):
        hook.before_run(SimpleNamespace(model=ssd))
    hook = ActiveLearningHook(pool=str(tmp_path / 'pool.json'), budget=1, scorer=dict(type='Entropy'),
                              img_dir=str(tmp_path / 'imgs'))
    with pytest.raises(UserError, match=r'1 of 2 pool images do not exist, e.g. .*/imgs/b.jpg'):
        hook.before_run(SimpleNamespace(model=ssd))
