# The study's detection setting (Table 11): SSD300 on PASCAL VOC07+12 trainval (16,551 images) as
# the pool, mAP on VOC07 test (11-point, mmdet's VOC0712 default); 2,000 initial labeled images,
# +1,000 per cycle up to 7,000; the schedule of the study's reference detection framework:
# 120k iterations, batch 32, lr 1e-3 with steps at 80k and 100k (override with --cfg-options).
# mmdet's SSD300 config is inherited, not copied.
_base_ = 'mmdet::pascal_voc/ssd300_voc0712.py'
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

# The pool is the ConcatDataset of VOC07+12 trainval itself (mmdet wraps it in a RepeatDataset for
# its epoch-based schedule; an iteration-based schedule does not need that, and pool indices must
# address images once).
train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset={{_base_.train_dataloader.dataset.dataset}})

max_iters = 120000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[80000, 100000], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters), logger=dict(interval=100))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=32)

# Read by tools/al_train.py (the driver); see mmal's README for every key.
active_learning = dict(
    initial_labeled=2000,
    budget=1000,
    num_cycles=6,  # trains on 2k, 3k, ..., 7k labeled images
    scorer=dict(type='Random'),
    adapter=dict(box_mode='detections', score_thr=0.5),
    retrain='scratch',
    num_trials=5,
    seed=0,
    metric='pascal_voc/mAP',
    batch_size=32,
)
