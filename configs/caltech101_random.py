# Random acquisition (the baseline).
_base_ = './_base_/caltech101.py'

active_learning = dict(scorer=dict(type='Random'))
