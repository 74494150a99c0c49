# CSD + Entropy of the detections (max over boxes).
_base_ = './_base_/ssd300_voc0712_csd.py'

active_learning = dict(scorer=dict(type='Entropy', aggregation='max'))
