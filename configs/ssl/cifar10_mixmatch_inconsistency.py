# MixMatch + Inconsistency (Gao et al., ECCV 2020): variance of the prediction over K=2 augmented
# views (random flip and shift by up to 4 px), as MixMatch compares its views.
_base_ = './_base_/cifar10_mixmatch.py'

active_learning = dict(scorer=dict(type='Inconsistency'), adapter=dict(aug_views=2, aug_shift=4))
