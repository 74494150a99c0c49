# AL + consistency-based semi-supervised learning for detection (the study's Table 12): SSD300
# trained with CSD on the labeled images and the unlabeled rest of VOC07+12 trainval, half of
# every batch each; 2,000 labeled to start, +1,000 per cycle up to 7,000; 120k iterations.
# Methods inherit this file and set active_learning.scorer.
_base_ = '../../_base_/ssd300_voc0712_al.py'

model = dict(
    type='CSDSingleStageDetector',
    consistency_weight=1.0,
    loc_weight=1.0,
    max_iters={{_base_.max_iters}},
    ramp_up_iters=12000,  # Gaussian ramp-up over the first 10 % ...
    ramp_down_iters=20000)  # ... and ramp-down over the last, low-lr stage
# Unlabeled images: the SSD augmentations that need no boxes (no Expand / MinIoURandomCrop).
unlabeled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(300, 300), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.5, 1.5),
         saturation_range=(0.5, 1.5), hue_delta=18),
    dict(type='PackDetInputs'),
]
active_learning = dict(semi_supervised=dict(labeled_ratio=0.5, unlabeled_pipeline=unlabeled_pipeline))
