# MixMatch on the toy CIFAR-10 set (python -m mmal.datasets.toy_cls data/toy_cifar10), CPU-sized:
# a narrow ResNet-18, 300 iterations per cycle, 50 -> 100 -> 200 labeled; same driver.
_base_ = './resnet_toycifar_al.py'

max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = []
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='Adam', lr=0.002))
log_processor = dict(by_epoch=False)
model = dict(type='MixMatchClassifier', temperature=0.5, alpha=0.75, lambda_u=75.0, ramp_up_iters=max_iters // 2)
active_learning = dict(initial_labeled=50, budget=[50, 100], num_cycles=3, scorer=dict(type='Inconsistency'),
                       semi_supervised=dict(labeled_ratio=0.5, unlabeled_views=2))
