# CSD + Random acquisition.
_base_ = './_base_/ssd300_voc0712_csd.py'

active_learning = dict(scorer=dict(type='Random'))
