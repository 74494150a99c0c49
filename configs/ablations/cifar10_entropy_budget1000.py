# Budget ablation (Table 6): entropy, 1000 labels to start and 1000 per cycle, up to 20k.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), initial_labeled=1000, budget=1000, num_cycles=20)
