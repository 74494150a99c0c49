# CIFAR-10x5 (Table 10): BADGE on the duplicated pool, where top-k uncertainty picks copies.
_base_ = './cifar10x5_random.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='BADGE'))
