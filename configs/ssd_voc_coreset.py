# SSD300 on VOC07+12, core-set acquisition (Table 11 setting, see _base_): k-center greedy on the
# global average of SSD's fc7 feature map (level 1, 1024 channels) against the labeled images.
_base_ = './_base_/ssd300_voc0712_al.py'

active_learning = dict(scorer=None, selection=dict(type='KCenterGreedy'), adapter=dict(feature_level=1))
