# Entropy of the softmax.
_base_ = './_base_/caltech256.py'

active_learning = dict(scorer=dict(type='Entropy'))
