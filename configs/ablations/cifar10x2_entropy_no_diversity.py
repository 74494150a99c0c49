# CIFAR-10x2 (Table 9): entropy over the whole pool.
_base_ = '../_base_/cifar10.py'

# Every training image 2 times: same content, distinct pool indices.
train_dataloader = dict(dataset=dict(_delete_=True, type='DuplicatedDataset', times=2, dataset=dict(
    type='CIFAR10', data_root={{_base_.data_root}}, split='train', pipeline={{_base_.train_pipeline}})))
active_learning = dict(scorer=dict(type='Entropy'), selection=dict(_delete_=True, type='TopK'))
