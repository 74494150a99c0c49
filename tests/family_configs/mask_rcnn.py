_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=5), mask_head=dict(num_classes=5)),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(score_thr=0.0)))
