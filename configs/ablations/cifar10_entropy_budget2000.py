# Budget ablation (Table 6): entropy, 2000 labels to start and 2000 per cycle, up to 20k.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), initial_labeled=2000, budget=2000, num_cycles=10)
