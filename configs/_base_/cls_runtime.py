# The study's classification setting (Table 1): SGD lr 0.1, momentum 0.9, weight decay 5e-4,
# 200 epochs, lr x0.1 at epoch 160, batch 128, no validation set; 5 trials from 1,000 labeled images,
# +1,000 per cycle, retrained from scratch. Dataset files add the datasets, the backbone, the class
# count and the number of cycles.
default_scope = 'mmdet'
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

train_dataloader = dict(batch_size=128, num_workers=4, persistent_workers=True,
                        sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(batch_size=128, num_workers=4, persistent_workers=True,
                       sampler=dict(type='DefaultSampler', shuffle=False))
model = dict(type='ImageClassifier', in_channels=512)
active_learning = dict(
    initial_labeled=1000, budget=1000, num_trials=5, retrain='scratch',
    selection=dict(type='RandomSubsetTopK', subset_size=10000),  # the study's setting: LLAL's 10k random subset
    metric='accuracy/top1', batch_size=128, num_workers=4, scorer=dict(type='Random'))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200, val_interval=1000)
val_cfg = None  # the study has no validation set
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='ClassificationAccuracy', topk=(1, 5))

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[160], gamma=0.1)]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False),  # the driver keeps model.pth
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]  # add dict(type='TensorboardVisBackend') for TensorBoard
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
