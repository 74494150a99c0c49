# Margin: smallest gap between the two most probable classes first.
_base_ = './_base_/caltech101.py'

active_learning = dict(scorer=dict(type='Margin'))
