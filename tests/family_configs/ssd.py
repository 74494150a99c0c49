_base_ = '../../configs/demo/ssd_toyvoc.py'  # mmdet's SSDHead on a CPU-sized backbone (128 px)
model = dict(test_cfg=dict(score_thr=0.0))
