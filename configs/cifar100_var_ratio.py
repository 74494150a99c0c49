# Variation ratio: 1 - max softmax probability.
_base_ = './_base_/cifar100.py'

active_learning = dict(scorer=dict(type='VariationRatio'))
