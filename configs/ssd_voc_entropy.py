# SSD300 on VOC07+12, acquisition by Entropy (the study's Table 11 setting, see _base_).
_base_ = './_base_/ssd300_voc0712_al.py'

active_learning = dict(scorer=dict(type='Entropy', aggregation='max'))
