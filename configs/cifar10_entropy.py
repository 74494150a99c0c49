# Entropy of the softmax.
_base_ = './_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'))
