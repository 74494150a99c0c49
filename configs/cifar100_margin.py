# Margin: smallest gap between the two most probable classes first.
_base_ = './_base_/cifar100.py'

active_learning = dict(scorer=dict(type='Margin'))
