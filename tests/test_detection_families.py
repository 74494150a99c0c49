"""Every detector family x acquisition method of mmal.zoo.matrix, on tiny models built from
mmdet's own configs: the boxes and scores acquisition works on are exactly the model's ``predict``."""
import logging
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmal.engine import AcquisitionService, build_method
from mmal.engine.class_quality import num_classes_of
from mmal.errors import UserError
from mmal.models import DetectionAdapter
from mmal.models.detection import find_family
from mmal.models.detection.distributions import score_log_probs, seesaw_log_probs, sigmoid_log_probs
from mmal.models.detection.family import best_overlap, first_occurrence
from mmal.zoo import matrix

SIZE = 128
_models = {}


def family_model(name):
    """The tiny detector of one family (built once per session), in eval mode."""
    if name not in _models:
        cfg = Config.fromfile(osp.join(REPO, 'tests', 'family_configs', f'{name}.py'))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # init_weights logs every parameter
        model.init_weights()
        logger.setLevel(level)
        model.mmal_class_quality = torch.rand(num_classes_of(model))  # as ClassQualityHook leaves it
        _models[name] = model.eval()
    return _models[name]


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8) for _ in range(n)]
    meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))
    return dict(inputs=imgs, data_samples=[DetDataSample(metainfo=meta) for _ in imgs])


def predicted(model, data):
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        return [s.pred_instances for s in model.predict(data['inputs'], data['data_samples'], rescale=False)]


@pytest.mark.parametrize('name', list(matrix.FAMILIES))
def test_detections_are_exactly_the_models_predict(name):
    model = family_model(name)
    adapter = DetectionAdapter(model, {'probs'})
    assert type(adapter.family).__name__ == matrix.FAMILIES[name][2]
    ours, theirs = adapter.detect(batch()), predicted(model, batch())
    assert sum(len(d) for d in theirs) > 0
    for mine, own in zip(ours, theirs):
        assert torch.equal(mine.bboxes, own.bboxes) and torch.equal(mine.scores, own.scores)
        assert torch.equal(mine.labels, own.labels)


@pytest.mark.parametrize('method', list(matrix.METHODS))
@pytest.mark.parametrize('name', list(matrix.FAMILIES))
def test_every_method_scores_every_family(name, method):
    model = family_model(name)
    built = build_method(*matrix.METHODS[method])
    scorer, selector, requires = built.scorer, built.selector, built.requires
    if not matrix.supported(method, matrix.FAMILIES[name][2]):
        with pytest.raises(UserError, match=r'^[^\n]+ cannot score [^\n]+\.$'):
            AcquisitionService(built, progress=False).check_model(model)
        return
    adapter = DetectionAdapter(model, requires | ({'probs'} - {'features'} if method != 'CoreSet' else set()))
    out = adapter(batch())
    assert out['num_images'] == 2
    if method == 'CoreSet':
        assert out['features'].shape[0] == 2 and torch.isfinite(out['features']).all()
        picks = selector.select(1, None, selector.image_inputs(out), torch.tensor([True, False]))
        assert picks.tolist() == [1]
        return
    # one row per candidate that produced a kept box of predict, in predict's order
    dets = adapter.detect(batch())
    image = torch.cat([torch.full_like(d.sources, b) for b, d in enumerate(dets)])
    source = torch.cat([d.sources for d in dets])
    first = first_occurrence(image, source, 10 ** 7)
    assert torch.equal(out['image_index'], image[first])
    probs = out['probs']
    assert probs.shape[0] == len(first) and torch.allclose(probs.sum(-1), torch.ones(len(first)), atol=1e-5)
    labels, scores = torch.cat([d.labels for d in dets])[first], torch.cat([d.scores for d in dets])[first]
    if name in ('ssd', 'faster_rcnn', 'cascade_rcnn', 'mask_rcnn', 'detr'):  # softmax: the score is p(label)
        assert torch.allclose(probs[torch.arange(len(first)), labels], scores, atol=1e-5)
    elif name != 'paa':  # sigmoid: the foreground mass is the best class's score, at least the kept label's,
        # and the classes share it by their sigmoids, so the kept label's score is foreground * q_label / q_best
        foreground, classes = 1 - probs[:, -1], probs[:, :-1]
        assert (foreground >= scores - 1e-5).all()
        kept = foreground * classes[torch.arange(len(first)), labels] / classes.max(1).values
        assert torch.allclose(kept, scores, atol=1e-5)
    if method == 'PPAL':  # the per-class quality ClassQualityHook records while training
        assert torch.equal(out['class_quality'], model.mmal_class_quality)
        values = scorer(out)
        picks = selector.select(1, values, selector.image_inputs(out), torch.zeros(2, dtype=torch.bool))
        assert values.shape == (2, ) and (values >= 0).all() and len(picks) == 1
        return
    if method == 'BADGE':
        inputs = selector.image_inputs(out)
        assert inputs['badge_input'].shape[0] == 2 and len(selector.select(1, None, inputs, torch.tensor(
            [False, True]))) == 1
        return
    values = scorer(out)
    assert values.shape == (2, ) and torch.isfinite(values).all() and (values >= 0).all()
    if method == 'BALD':
        assert out['mc_probs'].shape == (10, len(first), probs.shape[1])
    if method == 'Consistency':
        assert out['flip_log_probs'].shape == probs.shape


@pytest.mark.parametrize('name', ['faster_rcnn', 'cascade_rcnn'])
def test_a_batch_without_proposals_has_no_rows_as_predict_has_no_box(name, monkeypatch):
    model = family_model(name)
    monkeypatch.setattr(model.rpn_head.test_cfg, 'min_bbox_size', 10 ** 6)  # every proposal filtered out
    assert all(len(d) == 0 for d in predicted(model, batch()))
    adapter = DetectionAdapter(model, {'probs', 'mc_probs', 'last_layer_input', 'flip_log_probs'})
    out = adapter(batch())
    assert all(len(d) == 0 for d in adapter.detect(batch()))
    assert out['probs'].shape[0] == out['mc_probs'].shape[1] == out['last_layer_input'].shape[0] == 0
    assert out['flip_log_probs'].shape == out['probs'].shape


def test_the_seesaw_distribution_is_exactly_the_losss_activation():
    from mmdet.models.losses import SeesawLoss
    logits = torch.randn(6, 5 + 2, generator=torch.Generator().manual_seed(0)) * 4
    expected = SeesawLoss(num_classes=5).get_activation(logits)
    assert torch.allclose(seesaw_log_probs(logits).exp(), expected, atol=1e-6)


def test_a_head_that_outputs_scores_gets_the_sigmoid_heads_distribution():  # TOOD
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.allclose(score_log_probs(torch.sigmoid(logits).log()), sigmoid_log_probs(logits), atol=1e-5)


def test_a_sigmoid_box_at_0_6_keeps_its_score_whatever_the_class_count():
    for classes in (2, 20, 80):
        logits = torch.full((1, classes), -12.0)
        logits[0, 0] = torch.logit(torch.tensor(0.6))
        q = sigmoid_log_probs(logits).exp()
        assert q[0, :-1].sum().item() == pytest.approx(0.6, abs=1e-4)
        assert q[0, -1].item() == pytest.approx(0.4, abs=1e-4)
    with_factor = sigmoid_log_probs(torch.tensor([[0.0, 2.0]]), torch.tensor([0.5]).log()).exp()
    assert 1 - with_factor[0, -1].item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item() * 0.5, rel=1e-5)


def test_a_prior_kept_under_two_labels_is_one_row():
    model = family_model('retinanet')
    adapter = DetectionAdapter(model, {'probs'})
    dets = adapter.detect(batch())
    sources = torch.cat([d.sources + 10 ** 6 * b for b, d in enumerate(dets)])
    assert len(sources.unique()) < len(sources)  # this untrained head keeps some priors twice
    assert len(adapter(batch())['image_index']) == len(sources.unique())


def test_sparse_mc_samples_match_dense_dropout():
    """Monte-Carlo samples at the kept boxes follow the same distribution as dropout on the whole
    classifier input (3x3 convs of RetinaNet, 1x1 of YOLOX)."""
    for name in ('retinanet', 'yolox'):
        adapter = DetectionAdapter(family_model(name), {'mc_probs', 'probs'}, mc_samples=300, dropout_p=0.3)
        family = adapter.family
        data = adapter.model.data_preprocessor(batch(1), False)
        with torch.no_grad():
            p = family.run(adapter.model.extract_feat(data['inputs']), data['data_samples'])
            image = torch.zeros(5, dtype=torch.long)
            source = p.detections[0].sources[:5]
            torch.manual_seed(0)
            sparse = family.mc_log_probs(p, image, source, 300, 0.3).exp()
            dense = []
            for _ in range(300):
                maps = [layer(torch.nn.functional.dropout(tap, 0.3, True))
                        for layer, tap in zip(family.classifiers, p.taps)]
                channels = family.head.cls_out_channels
                logits = torch.cat([m.permute(0, 2, 3, 1).reshape(1, -1, channels) for m in maps], 1)
                dense.append(family.distribution(logits[image, source], family.log_factor(p, image, source)).exp())
            dense = torch.stack(dense)
        assert (sparse.mean(0) - dense.mean(0)).abs().max() < 0.03, name
        assert (sparse.std(0) - dense.std(0)).abs().max() < 0.03, name
        no_dropout = family.mc_log_probs(p, image, source, 2, 0.0).exp()
        assert torch.allclose(no_dropout[0], family.log_probs(p, image, source).exp(), atol=1e-5), name


def test_two_stage_mc_dropout_runs_fc6_once_and_is_exact_without_dropout():
    adapter = DetectionAdapter(family_model('faster_rcnn'), {'mc_probs', 'probs'}, mc_samples=4)
    family = adapter.family
    head = adapter.model.roi_head.bbox_head
    data = adapter.model.data_preprocessor(batch(1), False)
    with torch.no_grad():
        p = family.run(adapter.model.extract_feat(data['inputs']), data['data_samples'])
        source = p.detections[0].sources[:6]
        image = torch.zeros(len(source), dtype=torch.long)
        rows = []
        hook = head.shared_fcs[0].register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
        try:
            sampled = family.mc_log_probs(p, image, source, 4, 0.5).exp()
        finally:
            hook.remove()
        assert rows == [len(source)]  # fc6 once, not once per sample
        assert sampled.shape == (4, len(source), head.num_classes + 1) and not torch.allclose(sampled[0], sampled[1])
        exact = family.mc_log_probs(p, image, source, 2, 0.0).exp()
        assert torch.allclose(exact[1], family.log_probs(p, image, source).exp(), atol=1e-5)


def test_best_overlap_equals_the_full_iou_argmax():
    g = torch.Generator().manual_seed(0)

    def boxes(n, size):
        xy = torch.rand(n, 2, generator=g) * 320
        return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * size + 1], 1)

    for m, n, size in [(700, 900, 60), (40, 7, 3), (300, 500, 200), (1, 1, 5)]:
        a, b = boxes(m, size), boxes(n, size)
        b = torch.cat([b, b])  # exact ties: the lower index wins
        full = bbox_overlaps(a, b).argmax(1)  # a row without any overlap: index 0
        assert torch.equal(best_overlap(a, b), full)


class StubFamily:
    """A family whose flipped pass holds the original's candidate boxes mirrored and shuffled, each
    candidate with log-probabilities that name it."""
    flip_alignment = 'match'
    class_specific_boxes = False

    def __init__(self, boxes, permutation, width):
        self.boxes, self.permutation, self.width, self.calls = boxes, permutation, width, 0

    def run(self, feats, samples, detect=True):
        self.calls += 1
        from mmengine.structures import InstanceData

        from mmal.models.detection.family import flip_boxes
        boxes = self.boxes if self.calls == 1 else flip_boxes(self.boxes, self.width)[self.permutation]
        det = InstanceData(bboxes=boxes[:3], scores=torch.ones(3), labels=torch.zeros(3, dtype=torch.long),
                           sources=torch.arange(3))
        return type('Pass', (), dict(detections=[det], boxes=boxes, flipped=self.calls > 1))()

    def candidate_boxes(self, p, image, label=None):
        return p.boxes

    def log_probs(self, p, image, source):
        return torch.stack([source.float(), torch.full_like(source, float(p.flipped)).float()], 1)


def test_flip_alignment_pairs_each_box_with_the_flipped_candidate_that_overlaps_it_most():
    adapter = DetectionAdapter(family_model('fcos'), {'log_probs', 'flip_log_probs'})
    boxes = torch.tensor([[0., 0., 20., 30.], [50., 10., 90., 40.], [100., 60., 120., 127.], [10., 70., 60., 90.]])
    permutation = torch.tensor([2, 0, 3, 1])  # flipped candidate j is original candidate permutation[j], mirrored
    adapter._family = StubFamily(boxes, permutation, SIZE)
    data = adapter.model.data_preprocessor(batch(1), False)
    p = adapter.family.run(None, None)
    image, source = torch.zeros(3, dtype=torch.long), torch.arange(3)
    got = adapter._flip_log_probs(p, data['inputs'], data['data_samples'], image, source)
    # row s is paired with the flipped candidate j holding its mirror: permutation[j] == s
    assert got[:, 0].tolist() == [float(permutation.tolist().index(s)) for s in range(3)] and (got[:, 1] == 1).all()


def test_flip_log_probs_of_a_two_stage_detector_align_row_for_row():
    adapter = DetectionAdapter(family_model('faster_rcnn'), {'log_probs', 'flip_log_probs'})
    out = adapter(batch(1))
    assert out['flip_log_probs'].shape == out['log_probs'].shape and torch.isfinite(out['flip_log_probs']).all()


def test_unsupported_detector_fails_with_one_sentence_naming_the_supported_ones():
    cfg = Config.fromfile(osp.join(REPO, 'tests', 'family_configs', 'fcos.py'))
    cfg.model.bbox_head.type = 'CenterNetHead'
    cfg.model.bbox_head = dict(type='CenterNetHead', num_classes=5, in_channels=256, feat_channels=64)
    model = MODELS.build(cfg.model)
    with pytest.raises(TypeError, match=r'FCOS \(head CenterNetHead\) is not a supported detector: mmal scores SSD;'):
        find_family(model)
    DetectionAdapter(model, {'features'})  # core-set needs no family


def test_the_docs_table_is_the_rendered_matrix():
    with open(osp.join(REPO, 'docs', 'detectors.md')) as f:
        assert matrix.readme_section(f.read()) == matrix.render(), 'run: mmal sweep --matrix --write'


@pytest.mark.parametrize('name', ['ssd', 'fcos', 'faster_rcnn', 'detr'])
def test_regime_switch_scores_a_detector_and_picks_as_its_component(name):
    """The cold-start switch on detectors: one pass gives both components' inputs (image features for
    TypiClust, per-box probabilities reduced to image scores for the Entropy ranking)."""
    method = build_method(dict(type='Entropy'), dict(type='RegimeSwitch', switch_labeled=2,
                                                     low=dict(type='KCenterGreedy')))
    adapter = DetectionAdapter(family_model(name), method.requires)
    outs = [adapter(batch(2, seed)) for seed in range(3)]  # 6 images
    scores = torch.cat([method.scorer(out) for out in outs])
    inputs = {k: torch.cat([method.selector.image_inputs(out)[k] for out in outs])
              for k in method.selector.image_inputs(outs[0])}
    for labeled_rows, component in ((1, 'KCenterGreedy'), (3, 'TopK')):
        labeled = torch.arange(6) < labeled_rows
        got = method.selector.select(2, scores, inputs, labeled)
        alone = build_method(None if component == 'KCenterGreedy' else dict(type='Entropy'), dict(type=component))
        assert method.selector.acted_by() == component
        assert got.tolist() == alone.selector.select(2, scores, inputs, labeled).tolist()
