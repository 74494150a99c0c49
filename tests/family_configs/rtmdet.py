_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=5), test_cfg=dict(score_thr=0.0))
