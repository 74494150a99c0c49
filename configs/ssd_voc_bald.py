# SSD300 on VOC07+12, acquisition by BALD with MC dropout on the head's inputs (Table 11 setting,
# see _base_): backbone and neck run once per batch, the head T=10 times.
_base_ = './_base_/ssd300_voc0712_al.py'

active_learning = dict(
    scorer=dict(type='BALD', aggregation='max'),
    adapter=dict(box_mode='detections', score_thr=0.5, mc_samples=10, dropout_p=0.1))
