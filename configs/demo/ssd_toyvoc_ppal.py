# Toy-VOC active learning (see ssd_toyvoc_al.py) with PPAL (Yang et al., CVPR 2024): difficulty-calibrated
# uncertainty over the detections scoring >= 0.05 (PPAL's threshold), then category-conditioned matching and
# k-medoids among the 4 x budget most uncertain images. The driver adds ClassQualityHook to each cycle's
# training (the per-class quality the scorer reads). Run with
#   python tools/al_train.py configs/demo/ssd_toyvoc_ppal.py
_base_ = './ssd_toyvoc_al.py'

active_learning = dict(scorer=dict(type='DifficultyCalibratedUncertainty'),
                       selection=dict(type='CategoryMatching', pool_factor=4),
                       adapter=dict(score_thr=0.05))
