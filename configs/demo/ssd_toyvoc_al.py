# Active learning on the embedded toy VOC set with the CPU-sized SSD (shared by the demo configs):
# 100 initial labeled pool images (of 800), +100 per cycle, 4 cycles, 1 trial. Every cycle trains a
# fresh model for the same 500 iterations (as the study's detection schedule is iteration-based),
# so small labeled sets are not also under-trained.
_base_ = './ssd_toyvoc.py'

max_iters = 500
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters, eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters), logger=dict(interval=100))
log_processor = dict(by_epoch=False)

active_learning = dict(
    initial_labeled=100,
    budget=100,
    num_cycles=4,
    scorer=dict(type='Random'),
    adapter=dict(box_mode='detections', score_thr=0.5),
    retrain='scratch',
    num_trials=1,
    seed=0,
    metric='pascal_voc/mAP',
    batch_size=32)
