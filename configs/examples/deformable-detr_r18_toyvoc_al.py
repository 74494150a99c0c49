# Active learning with mmdet's own Deformable-DETR (DETR-type) on the embedded toy VOC set. mmdet's
# config is inherited unchanged but for ResNet-18 (random init: offline), 5 classes, the toy data and a
# short schedule. Each kept query is scored on its last-decoder-layer class scores; BADGE picks a
# diverse batch from the gradient embeddings of those queries.
_base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py', '../_base_/toyvoc_data.py']
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

model = dict(backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[128, 256, 512]),
             bbox_head=dict(num_classes=5))
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

active_learning = dict(initial_labeled=100, budget=100, num_cycles=3, selection=dict(type='BADGE'),
                       metric='pascal_voc/mAP', batch_size=16)
