# Cold start on the toy CIFAR-10, TypiClust on features learned without labels: SimCLR trained on the
# pool itself (mmal/engine/features.py; once per pool, cached under ~/.cache/mmal/features), instead of
# the features of the model trained on the few labels there are. Small start; medium with --cfg-options
# active_learning.initial_labeled=100 active_learning.budget=50.
_base_ = './resnet_toycifar_al.py'

active_learning = dict(initial_labeled=20, budget=20, num_cycles=4, num_trials=3,
                       scorer=None, selection=dict(_delete_=True, type='TypiClust'),
                       features=dict(source='self_supervised'))
