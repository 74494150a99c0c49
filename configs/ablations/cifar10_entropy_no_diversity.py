# Diversity ablation (Table 8): entropy over the whole pool.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), selection=dict(_delete_=True, type='TopK'))
