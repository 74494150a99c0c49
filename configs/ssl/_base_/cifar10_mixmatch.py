# AL + consistency-based semi-supervised learning for classification (the study's Table 13):
# MixMatch on CIFAR-10 with the study's ResNet-18, 250 labeled to start, doubling every cycle up
# to 4,000. MixMatch's settings: K=2 augmentations per unlabeled image, sharpening T=0.5, mixup
# alpha=0.75, lambda_u=75 ramped up linearly over 16 "epochs", Adam lr 0.002, batches of 64
# labeled + 64 unlabeled, "epochs" of 1,024 iterations; the paper trains 1,024 of them (set
# `epochs` lower for a shorter run). Methods inherit this file and set active_learning.scorer.
_base_ = '../../_base_/cifar10.py'

epochs = 1024
iters_per_epoch = 1024
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=epochs * iters_per_epoch)
param_scheduler = []  # MixMatch keeps its learning rate
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='Adam', lr=0.002))
log_processor = dict(by_epoch=False)
train_dataloader = dict(batch_size=128)  # half labeled, half unlabeled (semi_supervised.labeled_ratio)
model = dict(type='MixMatchClassifier', temperature=0.5, alpha=0.75, lambda_u=75.0,
             ramp_up_iters=16 * iters_per_epoch)
active_learning = dict(
    initial_labeled=250, budget=[250, 500, 1000, 2000], num_cycles=5,  # 250, 500, 1k, 2k, 4k
    semi_supervised=dict(labeled_ratio=0.5, unlabeled_views=2))
