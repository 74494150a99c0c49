# Entropy vs BADGE on a duplicated pool, on the CPU in minutes (the study's CIFAR-10x2 setting, Table 9):
# the toy CIFAR-10 of resnet_toycifar_al.py with every training image twice (DuplicatedDataset: same
# content, distinct pool indices). Top-k entropy can spend its budget on both copies of an image;
# BADGE (resnet_toycifar_x2_badge.py) picks a diverse batch.
_base_ = './resnet_toycifar_al.py'

train_dataloader = dict(dataset=dict(_delete_=True, type='DuplicatedDataset', times=2, dataset=dict(
    type='CIFAR10', data_root={{_base_.data_root}}, split='train', pipeline={{_base_.train_pipeline}})))
active_learning = dict(num_cycles=4)
