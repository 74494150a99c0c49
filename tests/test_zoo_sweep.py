"""The zoo sweep (tools/zoo_sweep.py): every detector config of the installed mmdet, built tiny, either
reproduces predict's boxes for a method or is refused in one sentence before training. A fast
subset runs here; the whole zoo is the slow test, and docs/detectors.md holds the committed record's counts."""
import importlib.util
import json
import os.path as osp

import pytest
from conftest import REPO

_spec = importlib.util.spec_from_file_location('zoo_sweep', osp.join(REPO, 'tools', 'zoo_sweep.py'))
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)

SUBSET = {
    'retinanet/retinanet_r18_fpn_1x_coco.py': dict(Entropy='equal', BALD='equal', Consistency='equal', BADGE='equal'),
    'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py': dict(Entropy='equal', BALD='equal', Consistency='equal',
                                                       PPAL='equal', LocStability='equal', LocTightness='equal'),
    # a head whose one map per level holds boxes, objectness and classes (YOLOV3Family)
    'yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py': dict(Entropy='equal', BALD='equal', Consistency='equal',
                                                           PPAL='equal', LocTightness='refused'),
    # Seesaw loss's custom class channels (classes x objectness): TwoStageFamily scores its activation
    'seesaw_loss/mask-rcnn_r50_fpn_seesaw-loss_random-ms-2x_lvis-v1.py': dict(Entropy='equal', BALD='equal'),
    # TOOD's forward returns task-aligned scores; its two classification branches have no dropout site
    'tood/tood_r50_fpn_1x_coco.py': dict(Entropy='equal', Consistency='equal', BALD='refused', LocStability='equal'),
    # FoveaBox decodes each level's boxes with its own base edge length
    'foveabox/fovea_r50_fpn_4xb4-1x_coco.py': dict(Entropy='equal', BALD='equal', BADGE='equal'),
    # HTC: a cascade whose box stages read the semantic head's features
    'htc/htc_r50_fpn_1x_coco.py': dict(Entropy='equal', BALD='equal', LocTightness='equal'),
    # a box head without ConvFCBBoxHead's forward: BALD has no dropout site, refused before training
    'double_heads/dh-faster-rcnn_r50_fpn_1x_coco.py': dict(Entropy='equal', BALD='refused'),
    # RoI heads that refine boxes in another branch or run queries: no family reproduces their predict
    'grid_rcnn/grid-rcnn_r50_fpn_gn-head_2x_coco.py': dict(Entropy='refused', CoreSet='equal'),
    'sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py': dict(Entropy='refused', BADGE='refused'),
    # a DETR whose predict_by_feat keeps a filtered subset of the queries
    'ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py': dict(Entropy='refused', Consistency='refused'),
}


def record():
    with open(zoo.RECORD) as f:
        return json.load(f)


def test_a_subset_of_the_zoo_equals_predict_or_is_refused_in_one_sentence():
    records = zoo.sweep(list(SUBSET), progress=False)
    assert zoo.failures(records) == []
    for r in records:
        assert r['status'] == 'ran', r
        for method, want in SUBSET[r['config']].items():
            assert r['methods'][method].split(':')[0] == want, (r['config'], method, r['methods'][method])
        for verdict in r['methods'].values():
            assert verdict == 'equal' or (verdict.startswith('refused: ') and '\n' not in verdict)
    sparse = next(r for r in records if r['config'].startswith('sparse_rcnn'))
    assert 'SparseRCNN (head SparseRoIHead) is not a supported detector' in sparse['methods']['Entropy']


def test_the_committed_record_covers_the_installed_zoo_and_the_docs_hold_its_counts():
    records = record()
    assert [r['config'] for r in records] == zoo.zoo_configs()
    assert zoo.failures(records) == []
    with open(osp.join(REPO, 'docs', 'detectors.md')) as f:
        assert zoo.readme_section(f.read()) == zoo.render(records), 'run: python tools/zoo_sweep.py --write'


@pytest.mark.slow
def test_the_whole_zoo():
    records = zoo.sweep(zoo.zoo_configs(), progress=False)
    assert zoo.failures(records) == []
    assert zoo.render(records) == zoo.render(record()), 'the committed record is stale: run python tools/zoo_sweep.py'
