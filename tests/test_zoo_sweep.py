"""The zoo sweep (mmal.zoo.sweep, `mmal sweep`): every detector config of the installed mmdet, built tiny, either
reproduces predict's boxes for a method or is refused in one sentence before training. A fast
subset runs here; the whole zoo is the slow test, and docs/detectors.md holds the committed record's counts."""
import json
import os.path as osp

import pytest
from conftest import REPO

from mmal.zoo import sweep as zoo

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
    with open(osp.join(REPO, zoo.RECORD)) as f:
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
        assert zoo.readme_section(f.read()) == zoo.render(records), 'run: mmal sweep --write'


@pytest.mark.slow
def test_the_whole_zoo():
    records = zoo.sweep(zoo.zoo_configs(), progress=False)
    assert zoo.failures(records) == []
    assert zoo.render(records) == zoo.render(record()), 'the committed record is stale: run mmal sweep'


def test_the_sweep_command_writes_the_tables_into_a_page_and_refuses_what_it_cannot_do(tmp_path, capsys):
    from mmal.apps.main import main
    from mmal.zoo import matrix
    page = tmp_path / 'detectors.md'
    with open(osp.join(REPO, 'docs', 'detectors.md')) as f:
        original = f.read()
    blank = original.replace(matrix.readme_section(original), 'old').replace(zoo.readme_section(original), 'old')
    page.write_text(blank)
    assert main(['sweep', '--matrix']) == 0
    assert capsys.readouterr().out.strip() == matrix.render()
    assert main(['sweep', '--matrix', '--write', '--page', str(page)]) == 0
    assert main(['sweep', '--write', '--page', str(page), '--record', osp.join(REPO, zoo.RECORD)]) == 0
    assert page.read_text() == original
    missing = tmp_path / 'none.json'
    assert main(['sweep', '--write', '--page', str(page), '--record', str(missing)]) == 2
    assert 'does not exist; run `mmal sweep` first' in capsys.readouterr().err
    no_markers = tmp_path / 'plain.md'
    no_markers.write_text('# nothing\n')
    assert main(['sweep', '--matrix', '--write', '--page', str(no_markers)]) == 2
    assert no_markers.read_text() == '# nothing\n'
