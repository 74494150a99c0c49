# Random acquisition (the baseline).
_base_ = './_base_/caltech256.py'

active_learning = dict(scorer=dict(type='Random'))
