# CSD on the toy VOC set: the toy SSD trained on the labeled images and the unlabeled rest of
# the pool (half of every batch each), for the CPU tests and a quick look; same driver.
_base_ = './ssd_toyvoc_al.py'

model = dict(type='CSDSingleStageDetector', max_iters={{_base_.max_iters}}, ramp_up_iters=100,
             ramp_down_iters=100)
unlabeled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({{_base_.input_size}}, {{_base_.input_size}}), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
active_learning = dict(scorer=dict(type='Consistency'),
                       semi_supervised=dict(labeled_ratio=0.5, unlabeled_pipeline=unlabeled_pipeline))
