# Active learning added to a model family mmal knows nothing special about: mmdet's own RetinaNet
# (sigmoid classification head) on the toy VOC set, plus one custom hook. Nothing of mmdet's model
# config is copied or edited: ResNet-18 as mmdet's retinanet_r18 config sets it, random init
# (offline), 5 classes. It trains on the first 100 images of the toy trainval list (the labeled
# part) and selects 50 of the others for labeling, under plain mmdet:
#     python tools/train.py configs/examples/retinanet_r18_toyvoc_al.py   (mmdet's own train.py too)
# writes work_dirs/retinanet_r18_toyvoc_al/acquisition.json.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::_base_/default_runtime.py',
    '../_base_/toyvoc_detection.py'
]
custom_imports = dict(imports=['mmal'], allow_failed_imports=False)

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    bbox_head=dict(num_classes=5))

train_dataloader = dict(dataset=dict(indices=100))  # the labeled part of the list; the rest is the pool

custom_hooks = [
    dict(type='ActiveLearningHook',
         pool='data/toy_voc/VOCdevkit/ToyVOC/ImageSets/Main/trainval.txt',
         budget=50,
         scorer=dict(type='Entropy', aggregation='max'),
         adapter=dict(box_mode='detections', score_thr=0.3))
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=35, norm_type=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
