# Diversity ablation (Table 8) with a batch-aware method: BADGE (k-means++ on gradient embeddings) on the
# whole unlabeled pool, beside entropy with and without the 10k random subset.
_base_ = '../_base_/cifar10.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='BADGE'))
