# The embedded toy VOC set (python -m mmal.datasets.toy_voc) read by mmdet's own VOCDataset and
# VOCMetric (11-point mAP, as VOC07 test), under toy_* names: put it over any mmdet config's own data
# with `train_dataloader = {{_base_.toy_train_dataloader}}` (and likewise val/test dataloader and
# evaluator); each dict replaces the one it lands on (_delete_). Images are 128 px; a model at
# another size overrides the Resize steps of the pipelines.
toy_classes = ('circle', 'square', 'triangle', 'diamond', 'cross')
toy_data_root = 'data/toy_voc/VOCdevkit/'
input_size = 128

toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
toy_voc = dict(type='VOCDataset', data_root=toy_data_root, metainfo=dict(classes=toy_classes),
               data_prefix=dict(sub_data_root='ToyVOC/'))
toy_train_dataloader = dict(
    _delete_=True, batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(**toy_voc, ann_file='ToyVOC/ImageSets/Main/trainval.txt',
                 filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    _delete_=True, batch_size=32, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**toy_voc, ann_file='ToyVOC/ImageSets/Main/test.txt', test_mode=True,
                 pipeline=toy_test_pipeline))
toy_val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
# Test reads what val reads; own copies, since merging consumes each dict's _delete_.
toy_test_dataloader = dict(toy_val_dataloader)
toy_test_evaluator = dict(toy_val_evaluator)
