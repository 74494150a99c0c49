_base_ = 'mmdet::detr/detr_r18_8xb2-500e_coco.py'
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=5))
