_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=5), test_cfg=dict(score_thr=0.0))
