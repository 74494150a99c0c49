# The toy SSD's active-learning schedule (ssd_toyvoc_al.py) on a detection set of real handwriting:
# UCI digit scans inked on coloured paper, 10 classes (python -m mmal.datasets.digits_voc --out
# data/digits_voc). No horizontal flip in training: a mirrored digit is another glyph.
_base_ = './ssd_toyvoc_al.py'

digit_classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
digits = dict(data_root='data/digits_voc/VOCdevkit/', metainfo=dict(classes=digit_classes),
              data_prefix=dict(sub_data_root='DigitsVOC/'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackDetInputs')
]
model = dict(bbox_head=dict(num_classes=10))
train_dataloader = dict(dataset=dict(**digits, ann_file='DigitsVOC/ImageSets/Main/trainval.txt',
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(**digits, ann_file='DigitsVOC/ImageSets/Main/test.txt'))
test_dataloader = dict(dataset=dict(**digits, ann_file='DigitsVOC/ImageSets/Main/test.txt'))
