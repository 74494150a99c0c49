_base_ = 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py'
model = dict(bbox_head=dict(num_classes=5), test_cfg=dict(score_thr=0.0))
