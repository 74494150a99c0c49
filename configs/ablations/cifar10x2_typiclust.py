# CIFAR-10x2 (Table 9): TypiClust on the duplicated pool.
_base_ = './cifar10x2_random.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='TypiClust'))
