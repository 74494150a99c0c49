# Budget ablation (Table 6): entropy, 500 labels to start and 500 per cycle, up to 20k.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), initial_labeled=500, budget=500, num_cycles=40)
