# SSD300 on VOC07+12 with a learning-loss module (LLAL); acquisition by predicted loss.
_base_ = './_base_/ssd300_voc0712_al.py'

model = dict(
    type='LLALSingleStageDetector',
    loss_prediction=dict(in_channels=(512, 1024, 512, 256, 256, 256), hidden=128),
    llal_margin=1.0,
    llal_weight=1.0,
    detach_after_iter=72000)  # 60% of the schedule, as LLAL's 120 of 200 epochs

active_learning = dict(scorer=dict(type='LossPrediction'))
