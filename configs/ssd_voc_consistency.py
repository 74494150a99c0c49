# SSD300 on VOC07+12, acquisition by flip consistency: symmetric KL between each kept box's class
# distribution and its anchor's in the horizontally flipped image (Table 11 setting, see _base_).
_base_ = './_base_/ssd300_voc0712_al.py'

active_learning = dict(scorer=dict(type='Consistency', aggregation='max'))
