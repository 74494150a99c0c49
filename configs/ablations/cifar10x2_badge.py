# CIFAR-10x2 (Table 9): BADGE on the duplicated pool, where top-k uncertainty picks copies.
_base_ = './cifar10x2_random.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='BADGE'))
