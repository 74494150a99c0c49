_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
# The three stages' box heads are a list, which a config cannot merge into: they stay mmdet's (80 classes).
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(score_thr=0.0)))
