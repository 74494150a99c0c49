# CSD + Inconsistency: CSD's own measure, the symmetric KL between the detections of the image and
# of its flip (max over boxes).
_base_ = './_base_/ssd300_voc0712_csd.py'

active_learning = dict(scorer=dict(type='Consistency', aggregation='max'))
