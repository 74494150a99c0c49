# Toy-VOC active learning (see ssd_toyvoc_al.py) with Kao et al.'s localization stability (ACCV 2018): each
# detection (score >= 0.05) is compared with its best match on 6 noisy copies of the image (Gaussian pixel noise,
# standard deviations 8 to 48); the image score is one minus the score-weighted mean IoU. Run with
#   python tools/al_train.py configs/demo/ssd_toyvoc_locstability.py
_base_ = './ssd_toyvoc_al.py'

active_learning = dict(scorer=dict(type='LocalizationStability'), adapter=dict(score_thr=0.05))
