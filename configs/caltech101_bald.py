# BALD with MC dropout: dropout 0.3 before the fc, 20 samples of dropout+fc per image
# (the backbone runs once).
_base_ = './_base_/caltech101.py'

model = dict(dropout=0.3)
active_learning = dict(scorer=dict(type='BALD'), adapter=dict(mc_samples=20))
