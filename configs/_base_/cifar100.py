# CIFAR-100: ResNet-18 (CIFAR form) at the study's Table 1 settings. Methods inherit this file and
# set active_learning.scorer. Data: <data_root>/cifar-100-python/ (the python version; see
# tools/download_data.sh).
_base_ = './cls_runtime.py'

data_root = 'data/cifar100/'
train_pipeline = [
    dict(type='RandomCropPad', size=32, padding=4),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CIFAR100', data_root=data_root, split='train', pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=256, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CIFAR100', data_root=data_root, split='test', pipeline=test_pipeline))

model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARResNet', depth=18, out_indices=(0, 1, 2, 3)),
    num_classes=100,
    in_channels=512,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[125.307, 122.961, 113.857],
                           std=[62.993, 62.089, 66.705]))

active_learning = dict(
    initial_labeled=1000, budget=1000, num_cycles=20, num_trials=5, retrain='scratch',
    selection='random_subset_topk', subset_size=10000,  # the study's setting: LLAL's 10k random subset
    metric='accuracy/top1', batch_size=256, num_workers=4, scorer=dict(type='Random'))
