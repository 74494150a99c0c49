# Retrain ablation (Table 7): every cycle trains from scratch (the study's default).
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), retrain='scratch')
