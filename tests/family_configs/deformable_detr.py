_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[128, 256, 512]),
    bbox_head=dict(num_classes=5))
