# BADGE on the duplicated toy pool (see resnet_toycifar_x2_entropy.py): k-means++ on gradient embeddings.
_base_ = './resnet_toycifar_x2_entropy.py'

active_learning = dict(scorer=None, selection=dict(_delete_=True, type='BADGE'))
