# Diversity ablation (Table 8): entropy over a random 10k subset of the pool (LLAL's heuristic).
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=dict(type='Entropy'), selection=dict(type='RandomSubsetTopK', subset_size=10000))
