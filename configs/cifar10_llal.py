# Learning loss (LLAL): the 4 stages pooled, one FC (128) each, concatenated, FC to the loss;
# margin ranking loss (margin 1, weight 1), its gradient into the backbone stopped from epoch 120.
_base_ = './_base_/cifar10.py'

model = dict(loss_prediction=dict(in_channels=(64, 128, 256, 512), hidden=128), llal_margin=1.0, llal_weight=1.0)
custom_hooks = [dict(type='LLALDetachHook', epoch=120)]
active_learning = dict(scorer=dict(type='LossPrediction'))
