"""Detection-native acquisition: PPAL (difficulty-calibrated uncertainty, category-conditioned
matching, the class-quality hook) and Kao et al.'s localization stability and tightness, on a
dense, a two-stage and a DETR-type detector."""
import json
import math

import pytest
import torch
from conftest import al_train, indices, labeled_sets
from mmengine.config import Config
from mmengine.runner import Runner
from test_detection_families import batch, family_model
from test_families_end_to_end import small_config

from mmal.checkpoint import CLASS_QUALITY_ATTR, load_local_checkpoint
from mmal.engine import AcquisitionService, ClassQualityHook, build_method
from mmal.engine.class_quality import detection_quality
from mmal.errors import UserError
from mmal.models import DetectionAdapter
from mmal.models.detection.family import first_occurrence
from mmal.scoring import functional as F
from mmal.selection import CategoryMatching, k_medoids, matching_distances
from mmal.selection.category_matching import BOX_FEATS, BOX_LABELS, BOX_SCORES

FAMILIES = ['retinanet', 'faster_rcnn', 'detr']  # one dense, one two-stage, one DETR-type


# -- the math ------------------------------------------------------------------------------------------
def test_difficulty_weights_run_from_one_to_one_plus_the_upper_bound():
    q = torch.tensor([1.0, 0.75, 0.5, 0.0])
    w = F.difficulty_weights(q, alpha=0.3, upper_bound=0.2)
    assert w[0].item() == pytest.approx(1.0) and w[-1].item() == pytest.approx(1.2)
    assert (w.diff() > 0).all()  # harder classes weigh more
    b = math.exp(1 / 0.3) - 1
    assert w[2].item() == pytest.approx(1 + 0.3 * 0.2 * math.log(b * 0.5 + 1))


def test_binary_entropy_weighted_mean_and_tightness():
    assert F.binary_entropy(torch.tensor([0.0, 1.0, 0.5])).tolist() == pytest.approx([0, 0, math.log(2)])
    out = F.weighted_mean(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 0, 2]), 4,
                          empty=-1.0)
    assert out.tolist() == pytest.approx([0.75, -1.0, 0.5, -1.0])
    # T + P = 1 is the most uncertain box; a tight confident box is certain
    assert F.localization_tightness(torch.tensor([0.3, 0.95]), torch.tensor([0.7, 0.95])).tolist() == \
        pytest.approx([1.0, 0.1])


def test_dcus_weights_each_box_entropy_by_its_class_and_sums_over_the_image():
    scorer = build_method(dict(type='DifficultyCalibratedUncertainty')).scorer
    out = dict(num_images=3, image_index=torch.tensor([0, 0, 1, 1]), scores=torch.tensor([0.5, 0.5, 0.5, 0.01]),
               labels=torch.tensor([0, 1, 1, 0]), class_quality=torch.tensor([1.0, 0.0]))
    h = math.log(2)
    # image 0: class 0 (quality 1, weight 1) + class 1 (never detected, weight 1.2); image 1: its second box is
    # below PPAL's 0.05; image 2 has no box
    assert scorer(out).tolist() == pytest.approx([h + 1.2 * h, 1.2 * h, 0.0])


def test_localization_stability_is_one_minus_the_score_weighted_stability():
    scorer = build_method(dict(type='LocalizationStability', empty_score='max')).scorer
    out = dict(num_images=2, image_index=torch.tensor([0, 0]), scores=torch.tensor([0.9, 0.1]),
               box_stability=torch.tensor([1.0, 0.0]))
    values = scorer(out)
    assert values[0].item() == pytest.approx(0.1) and values[1].item() > 1e30  # the empty image ranks first


def test_matching_distance_compares_boxes_of_the_same_class_only():
    e = torch.eye(3)
    labels = torch.tensor([[0, 1], [0, 1], [0, -1], [2, -1], [-1, -1], [-1, -1]])
    feats = torch.stack([e[:2], e[:2], torch.stack([e[0], e[0]]), torch.stack([e[0], e[0]]), e[:2], e[:2]])
    dist = matching_distances(labels, torch.ones(6, 2), feats.half())
    assert torch.allclose(dist, dist.T) and (dist.diagonal() == 0).all()
    assert dist[0, 1].item() == pytest.approx(0)  # the same boxes
    # image 2 has only image 0's class-0 box: 0 one way; image 0's class-1 box finds nothing in image 2 (2)
    assert dist[0, 2].item() == pytest.approx((0 + (0 + 2) / 2) / 2)
    assert dist[0, 3].item() == pytest.approx(2)  # no class in common, though the features are alike
    assert dist[4, 5].item() == 0 and dist[0, 4].item() == 2  # images without a box


def test_k_medoids_finds_one_point_per_cluster():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = (centres[:, None] + 0.1 * torch.randn(3, 20, 2, generator=g)).reshape(-1, 2)
    picks = k_medoids(torch.cdist(points, points), 3, torch.Generator().manual_seed(1))
    assert sorted((picks // 20).tolist()) == [0, 1, 2]


def test_category_matching_picks_diverse_images_among_the_most_uncertain():
    # 12 images: three groups of near-duplicates (same class, same feature direction) with the most
    # uncertain images all in group 0; a top-k would take 3 near-duplicates
    g = torch.Generator().manual_seed(0)
    group = torch.arange(12) % 3
    directions = torch.eye(8)[:3]
    feats = directions[group] + 0.01 * torch.randn(12, 8, generator=g)
    outputs = dict(num_images=12, image_index=torch.arange(12), labels=group, scores=torch.full((12, ), 0.9),
                   last_layer_input=feats)
    selector = CategoryMatching(pool_factor=4, seed=0)
    inputs = selector.image_inputs(outputs)
    assert inputs[BOX_LABELS].shape == (12, 20) and inputs[BOX_FEATS].dtype == torch.float16
    scores = torch.linspace(1, 0, 12) + (group == 0) * 10.0
    picks = selector.select(3, scores, inputs, torch.zeros(12, dtype=torch.bool))
    assert sorted(group[picks].tolist()) == [0, 1, 2]
    assert scores[picks].tolist() == sorted(scores[picks].tolist(), reverse=True)
    top = torch.topk(scores, 3).indices
    assert group[top].tolist() == [0, 0, 0]
    # only the pool_factor x budget most uncertain images are candidates
    only_top = CategoryMatching(pool_factor=1, seed=0).select(3, scores, inputs, torch.zeros(12, dtype=torch.bool))
    assert sorted(only_top.tolist()) == sorted(top.tolist())


def test_image_boxes_keeps_the_best_scoring_boxes_above_the_threshold():
    selector = CategoryMatching(max_boxes=2, score_thr=0.1)
    outputs = dict(num_images=2, image_index=torch.tensor([0, 0, 0, 1]), labels=torch.tensor([3, 4, 5, 6]),
                   scores=torch.tensor([0.2, 0.9, 0.5, 0.05]), last_layer_input=torch.ones(4, 3))
    inputs = selector.image_inputs(outputs)
    assert inputs[BOX_LABELS].tolist() == [[4, 5], [-1, -1]]
    assert inputs[BOX_SCORES][0].tolist() == pytest.approx([0.9, 0.5])
    assert torch.allclose(inputs[BOX_FEATS][0].float().norm(dim=1), torch.ones(2), atol=1e-3)


def test_detection_quality_is_the_best_same_class_score_and_iou():
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])
    q = detection_quality(gt, torch.tensor([0, 1]), boxes, torch.tensor([0, 0, 0]), torch.tensor([0.5, 1.0, 0.9]), 0.6)
    assert q[0].item() == pytest.approx(max(0.5 ** 0.6, 0.5 ** 0.4))  # the better of the two class-0 boxes
    assert q[1].item() == 0  # its class was not detected


def test_the_hook_keeps_a_bias_corrected_ema_per_class():
    hook = ClassQualityHook(momentum=0.9)
    hook.ema, hook.updates, hook.quality = torch.zeros(3), torch.zeros(3), torch.zeros(3)
    hook.update(torch.tensor([0.8, 0.0, 0.0]), torch.tensor([2.0, 0.0, 0.0]))  # class 0 seen twice, mean 0.4
    assert hook.quality.tolist() == pytest.approx([0.4, 0, 0])  # not 0.04: the first value is not shrunk
    hook.update(torch.tensor([0.0, 0.5, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    assert hook.quality.tolist() == pytest.approx([0.4, 0.5, 0])  # an unseen class keeps its value
    hook.update(torch.tensor([0.8, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0]))
    assert hook.quality[0].item() == pytest.approx((0.9 * 0.1 * 0.4 + 0.1 * 0.8) / (1 - 0.81))


# -- on one dense, one two-stage, one DETR-type detector ---------------------------------------------------
@pytest.mark.parametrize('name', FAMILIES)
def test_the_kept_detections_and_their_stability(name):
    model = family_model(name)
    adapter = DetectionAdapter(model, {'boxes', 'labels', 'scores', 'box_stability'})
    out = adapter(batch())
    dets = adapter.detect(batch())
    image = torch.cat([torch.full_like(d.sources, b) for b, d in enumerate(dets)])
    first = first_occurrence(image, torch.cat([d.sources for d in dets]), 10 ** 7)
    assert len(first) > 0
    assert torch.equal(out['boxes'], torch.cat([d.bboxes for d in dets])[first])
    assert torch.equal(out['labels'], torch.cat([d.labels for d in dets])[first])
    assert torch.equal(out['scores'], torch.cat([d.scores for d in dets])[first])
    stability = out['box_stability']
    assert ((stability >= 0) & (stability <= 1 + 1e-6)).all() and (stability < 0.999).any()
    # noise far below a pixel value moves no box
    calm = DetectionAdapter(model, {'box_stability'}, noise_levels=(1e-4, ))(batch())['box_stability']
    assert torch.allclose(calm, torch.ones_like(calm), atol=1e-3)
    # each image's noise is its own (seeded by its path), so alone or in a batch it sees the same noise; what
    # is promised is agreement up to the numerics of a padded batch, which differ by CPU kernel: a box whose
    # best match flips under them changes its own value, so at most one box in ten may differ beyond 1e-4
    single = DetectionAdapter(model, {'box_stability'})(_first_image(batch()))['box_stability']
    batched = stability[out['image_index'] == 0]
    assert single.shape == batched.shape
    differ = int(((single - batched).abs() > 1e-4).sum())
    assert differ <= max(1, len(batched) // 10), (single, batched)


def _first_image(data):
    return dict(inputs=data['inputs'][:1], data_samples=data['data_samples'][:1])


def test_noise_is_seeded_by_the_image_path():
    model = family_model('retinanet')
    data = batch()
    for i, sample in enumerate(data['data_samples']):
        sample.set_metainfo(dict(img_path=f'img{i}.jpg'))
    one = DetectionAdapter(model, {'box_stability'})(data)['box_stability']
    again = DetectionAdapter(model, {'box_stability'})(data)['box_stability']
    other = DetectionAdapter(model, {'box_stability'}, noise_seed=1)(data)['box_stability']
    assert torch.equal(one, again) and not torch.equal(one, other)


def test_tightness_is_the_iou_of_each_box_with_its_proposal():
    model = family_model('faster_rcnn')
    adapter = DetectionAdapter(model, {'boxes', 'scores', 'proposal_iou'})
    out = adapter(batch())
    data = model.data_preprocessor(batch(), False)
    proposals = model.rpn_head.predict(model.extract_feat(data['inputs']), data['data_samples'], rescale=False)
    dets = adapter.detect(batch())
    image = torch.cat([torch.full_like(d.sources, b) for b, d in enumerate(dets)])
    source = torch.cat([d.sources for d in dets])
    first = first_occurrence(image, source, 10 ** 7)
    from mmdet.structures.bbox import bbox_overlaps
    expected = torch.cat([bbox_overlaps(proposals[int(b)].bboxes[int(s)][None], box[None])[0]
                          for b, s, box in zip(image[first], source[first], out['boxes'])])
    assert torch.allclose(out['proposal_iou'], expected, atol=1e-5)
    values = build_method(dict(type='LocalizationTightness')).scorer(out)
    assert values.shape == (2, ) and ((values >= 0) & (values <= 1)).all()


@pytest.mark.parametrize('name', ['retinanet', 'detr'])
def test_tightness_is_refused_before_training_without_proposals(name):
    service = AcquisitionService(build_method(dict(type='LocalizationTightness')), progress=False)
    with pytest.raises(UserError, match=r'LocalizationTightness cannot score .*has no proposals \(only two-stage '
                                        r'detectors do\); use LocalizationStability\.$'):
        service.check_model(family_model(name))


@pytest.mark.parametrize('name', FAMILIES)
def test_ppal_runs_on_every_family(name):
    model = family_model(name)
    method = build_method(dict(type='DifficultyCalibratedUncertainty', score_thr=0.0), dict(type='CategoryMatching'))
    AcquisitionService(method, progress=False).check_model(model)
    adapter = DetectionAdapter(model, method.requires)
    recorded = getattr(model, CLASS_QUALITY_ATTR)
    delattr(model, CLASS_QUALITY_ATTR)
    try:
        with pytest.raises(UserError, match=r"no per-class detection quality .*dict\(type='ClassQualityHook'\)"):
            adapter(batch())
    finally:
        setattr(model, CLASS_QUALITY_ATTR, recorded)
    out = adapter(batch(4))
    scores = method.scorer(out)
    assert scores.shape == (4, ) and (scores > 0).all()
    picks = method.selector.select(2, scores, method.selector.image_inputs(out), torch.zeros(4, dtype=torch.bool))
    assert len(set(picks.tolist())) == 2


# -- in training ------------------------------------------------------------------------------------------
def test_al_train_trains_with_the_quality_hook_and_selects_with_ppal(toy_voc_root, tmp_path):
    config = small_config(tmp_path, 'faster-rcnn', toy_voc_root,
                          scorer=dict(type='DifficultyCalibratedUncertainty', score_thr=0.0),
                          selection=dict(type='CategoryMatching', pool_factor=2),
                          adapter=dict(score_thr=0.0))
    with open(config, 'a') as f:  # the driver adds ClassQualityHook unless the config has one: measure every step
        f.write("custom_hooks = [dict(type='ClassQualityHook', interval=1)]\n")
    al_train(config, tmp_path / 'w')
    sets = labeled_sets(tmp_path / 'w', cycles=2)
    selected = json.loads((tmp_path / 'w' / 'trial_0' / 'cycle_0' / 'selected.json').read_text())
    assert len(indices(selected)) == 6 and not set(indices(selected)) & set(sets[0])
    checkpoint = load_local_checkpoint(str(tmp_path / 'w' / 'trial_0' / 'cycle_0' / 'model.pth'))
    quality = checkpoint['meta'][CLASS_QUALITY_ATTR]
    assert len(quality) == 5 and all(0 <= q <= 1 for q in quality) and max(quality) > 0  # the toy set's 5 classes


def test_the_hook_under_plain_training_needs_the_quality_hook(toy_voc_root, tmp_path):
    cfg = Config.fromfile(small_config(tmp_path, 'fcos', toy_voc_root))
    cfg.pop('active_learning')
    cfg.work_dir = str(tmp_path / 'w')
    method = dict(scorer=dict(type='DifficultyCalibratedUncertainty'), selection=dict(type='CategoryMatching'))
    cfg.custom_hooks = [dict(type='ActiveLearningHook', pool=toy_voc_root, budget=5, progress=False, **method)]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UserError, match=r"reads what ClassQualityHook records while training; add "
                                        r"dict\(type='ClassQualityHook'\) to custom_hooks\.$"):
        runner.train()
    assert runner.iter == 0
