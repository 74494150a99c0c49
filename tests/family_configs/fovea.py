_base_ = 'mmdet::foveabox/fovea_r50_fpn_4xb4-1x_coco.py'
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    bbox_head=dict(num_classes=5),
    test_cfg=dict(score_thr=0.0))
