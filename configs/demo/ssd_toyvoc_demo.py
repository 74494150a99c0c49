# The README's demo (tools/demo.py): toy-VOC active learning as ssd_toyvoc_al.py, on a shorter schedule
# (200 iterations a cycle) so that 2 methods x 3 seeds run in minutes on 2 CPU cores. Entropy here;
# the demo's random runs set active_learning.scorer.type=Random. One run by hand:
#   python tools/al_train.py configs/demo/ssd_toyvoc_demo.py --cfg-options active_learning.seed=1
_base_ = './ssd_toyvoc_al.py'

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters, eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))

active_learning = dict(scorer=dict(type='Entropy', aggregation='max'))
