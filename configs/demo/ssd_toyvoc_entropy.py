# Toy-VOC active learning (see ssd_toyvoc_al.py) with Entropy acquisition. Run with
#   python tools/al_train.py configs/demo/ssd_toyvoc_entropy.py
_base_ = './ssd_toyvoc_al.py'

active_learning = dict(scorer=dict(type='Entropy', aggregation='max'))
