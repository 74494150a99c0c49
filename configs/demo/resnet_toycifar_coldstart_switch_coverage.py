# Cold start on the toy CIFAR-10 (500 pool images, 10 classes), RegimeSwitch by a criterion instead of a
# fixed count: TypiClust until the labeled images cover 80 % of the pool at the ProbCover radius (estimated
# by its purity rule), then Entropy top-k. Small start; medium with --cfg-options
# active_learning.initial_labeled=100 active_learning.budget=50.
_base_ = './resnet_toycifar_al.py'

active_learning = dict(initial_labeled=20, budget=20, num_cycles=4, num_trials=3,
                       scorer=dict(type='Entropy'),
                       selection=dict(_delete_=True, type='RegimeSwitch', switch_coverage=0.8, num_classes=10,
                                      low=dict(type='TypiClust'), high=dict(type='TopK')))
