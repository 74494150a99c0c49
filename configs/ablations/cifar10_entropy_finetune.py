# Retrain ablation (Table 7): every cycle fine-tunes the previous cycle's model.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), retrain='finetune')
