"""The study's VOC07+12 configs: inherit mmdet's SSD300, carry the AL setting, build offline."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmal.engine import build_method
from mmal.models import DetectionAdapter

METHODS = ['random', 'entropy', 'var_ratio', 'bald', 'coreset', 'llal', 'consistency']


def test_every_method_has_a_config():
    found = {osp.basename(p)[len('ssd_voc_'):-3] for p in glob.glob(osp.join(REPO, 'configs', 'ssd_voc_*.py'))}
    assert found == set(METHODS)


@pytest.mark.parametrize('method', METHODS)
def test_config_builds_scores_a_batch_offline(method):
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'ssd_voc_{method}.py'))
    al = cfg.active_learning
    assert (al.initial_labeled, al.budget, al.num_cycles, al.retrain) == (2000, 1000, 6, 'scratch')
    assert cfg.train_cfg.max_iters == 120000 and cfg.train_dataloader.batch_size == 32
    assert [s.milestones for s in cfg.param_scheduler if s.type == 'MultiStepLR'] == [[80000, 100000]]
    assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.val_evaluator.eval_mode == '11points'
    pool = cfg.train_dataloader.dataset
    assert pool.type == 'ConcatDataset' and [d.ann_file for d in pool.datasets] == [
        'VOC2007/ImageSets/Main/trainval.txt', 'VOC2012/ImageSets/Main/trainval.txt']

    method = build_method(al.scorer, al.get('selection'))
    cfg.model.backbone.init_cfg = None  # no download
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # L2Norm's scale is torch.empty until initialised
    model.eval()
    adapter = DetectionAdapter(model, method.requires, **{**al.get('adapter', {}), 'score_thr': 0.0,
                                                          'max_per_img': 20, 'mc_samples': 2})
    meta = dict(img_shape=(300, 300), ori_shape=(300, 300), scale_factor=(1.0, 1.0))
    batch = dict(inputs=[torch.randint(0, 256, (3, 300, 300), dtype=torch.uint8)],
                 data_samples=[DetDataSample(metainfo=meta)])
    out = adapter(batch)
    values = method.scorer(out) if method.scorer else method.selector.image_inputs(out)['features']
    assert values.shape[0] == 1 and torch.isfinite(values).all()
