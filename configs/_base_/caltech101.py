# Caltech-101: ResNet-18 (standard form, 224x224 crops) at the study's Table 1 settings. Methods
# inherit this file and set active_learning.scorer. Data: <data_root>/101_ObjectCategories/<class>/*.jpg,
# split per class by Caltech101's fixed seeded split (see mmal/datasets/classification.py).
_base_ = './cls_runtime.py'

data_root = 'data/caltech101/'
train_pipeline = [
    dict(type='mmcv.LoadImageFromFile'),
    dict(type='mmcv.Resize', scale=(256, 256), keep_ratio=False),
    dict(type='RandomCropPad', size=224),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='mmcv.LoadImageFromFile'),
    dict(type='mmcv.Resize', scale=(256, 256), keep_ratio=False),
    dict(type='mmcv.CenterCrop', crop_size=224),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    dataset=dict(type='Caltech101', data_root=data_root, split='train', pipeline=train_pipeline))
test_dataloader = dict(
    dataset=dict(type='Caltech101', data_root=data_root, split='test', pipeline=test_pipeline))

model = dict(
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_eval=False),
    num_classes=101,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True))

active_learning = dict(num_cycles=5)
