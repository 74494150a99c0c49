# Core-set: k-center greedy on the penultimate features of the whole pool.
_base_ = './_base_/caltech256.py'

active_learning = dict(scorer=dict(type='CoreSet'), selection=None)  # CoreSet's own: KCenterGreedy on the whole pool
