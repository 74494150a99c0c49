# Classification AL on CPU in minutes: a narrow CIFAR ResNet-18 on a toy CIFAR-10 set written in the
# real pickle format (python -m mmal.datasets.toy_cls data/toy_cifar10). Same driver as the study's
# configs/cifar10_*.py; only the data, the width and the schedule are small.
_base_ = '../_base_/cifar10.py'

data_root = 'data/toy_cifar10/'
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
test_dataloader = dict(batch_size=128, num_workers=0, persistent_workers=False,
                       dataset=dict(data_root=data_root))
model = dict(backbone=dict(base_channels=16), in_channels=128)
train_cfg = dict(max_epochs=15)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[12], gamma=0.1)]
optim_wrapper = dict(optimizer=dict(lr=0.05))
default_hooks = dict(logger=dict(interval=10))
active_learning = dict(initial_labeled=100, budget=100, num_cycles=3, num_trials=1,
                       batch_size=128, num_workers=0, scorer=dict(type='Entropy'),
                       selection=dict(_delete_=True, type='TopK'))  # the whole toy pool
