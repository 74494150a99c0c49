_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
model = dict(
    num_queries=100,
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[128, 256, 512]),
    bbox_head=dict(num_classes=5),
    test_cfg=dict(max_per_img=100))
