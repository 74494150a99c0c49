# CIFAR-10x5 (Table 10): TypiClust on the duplicated pool.
_base_ = './cifar10x5_random.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='TypiClust'))
