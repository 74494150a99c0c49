# Diversity ablations' baseline (Tables 8-10): random acquisition.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Random'))
