# Core-set: k-center greedy on the penultimate features of the whole pool.
_base_ = './_base_/caltech256.py'

active_learning = dict(scorer=None, selection=dict(type='KCenterGreedy'))  # k-center greedy on the whole pool
