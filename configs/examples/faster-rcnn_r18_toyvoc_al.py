# Active learning with mmdet's own Faster R-CNN (two-stage) on the embedded toy VOC set. mmdet's config
# is inherited unchanged but for ResNet-18 (random init: offline), 5 classes, the toy data and a
# short schedule. Entropy over the RoI head's softmax of each kept box; mmdet's predict thresholds.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/toyvoc_data.py']
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

model = dict(backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[64, 128, 256, 512]),
             roi_head=dict(bbox_head=dict(num_classes=5)))
train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = {{_base_.toy_test_dataloader}}
val_evaluator = {{_base_.toy_val_evaluator}}
test_evaluator = {{_base_.toy_test_evaluator}}

# A short iteration-based schedule for the CPU (the study's detection schedule is iteration-based).
max_iters = 400
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters), logger=dict(interval=50))
log_processor = dict(by_epoch=False)
optim_wrapper = dict(optimizer=dict(lr=0.02))

active_learning = dict(initial_labeled=100, budget=100, num_cycles=3, scorer=dict(type='Entropy'),
                       metric='pascal_voc/mAP', batch_size=16)
