# Cold start on the toy CIFAR-10: TypiClust until the labeled images cover 80 % of the pool at the
# ProbCover radius, both measured on self-supervised features (SimCLR on the pool), then Entropy top-k.
_base_ = './resnet_toycifar_al.py'

active_learning = dict(initial_labeled=20, budget=20, num_cycles=4, num_trials=3,
                       scorer=dict(type='Entropy'),
                       selection=dict(_delete_=True, type='RegimeSwitch', switch_coverage=0.8, num_classes=10,
                                      low=dict(type='TypiClust'), high=dict(type='TopK')),
                       features=dict(source='self_supervised'))
