# The embedded toy VOC set (python -m mmal.datasets.toy_voc) read by mmdet's own VOCDataset and
# VOCMetric (11-point mAP, as VOC07 test). Images are 128 px; a model at another size overrides the
# Resize steps of the pipelines.
classes = ('circle', 'square', 'triangle', 'diamond', 'cross')
data_root = 'data/toy_voc/VOCdevkit/'
input_size = 128

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
toy_voc = dict(type='VOCDataset', data_root=data_root, metainfo=dict(classes=classes),
               data_prefix=dict(sub_data_root='VOC2007/'))
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(**toy_voc, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**toy_voc, ann_file='VOC2007/ImageSets/Main/test.txt', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator

