# CIFAR-10: ResNet-18 (CIFAR form) at the study's Table 1 settings. Methods inherit this file and
# set active_learning.scorer. Data: <data_root>/cifar-10-batches-py/ (the python version; see
# tools/download_data.sh).
_base_ = './cls_runtime.py'

data_root = 'data/cifar10/'
train_pipeline = [
    dict(type='RandomCropPad', size=32, padding=4),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    dataset=dict(type='CIFAR10', data_root=data_root, split='train', pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=256, dataset=dict(type='CIFAR10', data_root=data_root, split='test', pipeline=test_pipeline))

model = dict(
    backbone=dict(type='CIFARResNet', depth=18, out_indices=(0, 1, 2, 3)),
    num_classes=10,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[125.307, 122.961, 113.857],
                           std=[62.993, 62.089, 66.705]))

active_learning = dict(num_cycles=20, batch_size=256)
