# Variation ratio: 1 - max softmax probability.
_base_ = './_base_/cifar10.py'

active_learning = dict(scorer=dict(type='VariationRatio'))
