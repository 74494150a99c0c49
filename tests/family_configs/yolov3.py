_base_ = 'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py'
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=5),
             test_cfg=dict(score_thr=0.0, conf_thr=0.0))
