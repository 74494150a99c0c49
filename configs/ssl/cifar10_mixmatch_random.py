# MixMatch + Random acquisition.
_base_ = './_base_/cifar10_mixmatch.py'

active_learning = dict(scorer=dict(type='Random'))
