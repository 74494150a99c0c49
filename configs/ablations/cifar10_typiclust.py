# Diversity ablation (Table 8) with a batch-aware method: TypiClust (typical images of uncovered k-means
# clusters of the penultimate features) on the whole pool, beside entropy with and without the 10k subset.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='TypiClust'))
