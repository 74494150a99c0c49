# CIFAR-100: the CIFAR-10 setting (ResNet-18, CIFAR form, Table 1) on <data_root>/cifar-100-python/
# (the python version; see tools/download_data.sh). Methods inherit this file and set
# active_learning.scorer.
_base_ = './cifar10.py'

data_root = 'data/cifar100/'
train_dataloader = dict(dataset=dict(type='CIFAR100', data_root=data_root))
test_dataloader = dict(dataset=dict(type='CIFAR100', data_root=data_root))
model = dict(num_classes=100)
