# A CPU-sized SSD on the embedded toy VOC set (mmal.datasets.toy_voc): a narrow VGG-style
# backbone at 128 px, mmdet's own SSDHead, VOCDataset and VOCMetric (11-point mAP).
# Downloads nothing. Trains in a few minutes on 2 CPU cores.
_base_ = ['mmdet::_base_/default_runtime.py', '../_base_/toyvoc_detection.py']
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

input_size = 128
num_classes = 5

model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(type='TinyVGG', widths=(16, 32, 64, 96, 128, 128), depths=(1, 2, 2, 2, 1, 1),
                  out_indices=(2, 3, 4, 5)),
    neck=None,
    bbox_head=dict(
        type='SSDHead',
        in_channels=(64, 96, 128, 128),
        num_classes=num_classes,
        anchor_generator=dict(
            type='SSDAnchorGenerator', scale_major=False, input_size=input_size,
            strides=[8, 16, 32, 64], ratios=([2], [2], [2], [2]),
            min_sizes=[14, 28, 50, 80], max_sizes=[28, 50, 80, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.,
                      ignore_iof_thr=-1, gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1., allowed_border=-1, pos_weight=-1, neg_pos_ratio=3, debug=False),
    test_cfg=dict(nms_pre=1000, nms=dict(type='nms', iou_threshold=0.45), min_bbox_size=0,
                  score_thr=0.02, max_per_img=100))

max_epochs = 24
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=3e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=1e-5)
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=20),
                     checkpoint=dict(type='CheckpointHook', interval=max_epochs))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=16)
