# Variation ratio: 1 - max softmax probability.
_base_ = './_base_/caltech101.py'

active_learning = dict(scorer=dict(type='VariationRatio'))
