# Cold start on the toy CIFAR-10 with the default switch rule (20 labeled images per class, see
# mmal/selection/switch.py): TypiClust on self-supervised features below it, Entropy top-k from it on.
_base_ = './resnet_toycifar_al.py'

active_learning = dict(initial_labeled=20, budget=20, num_cycles=4, num_trials=3,
                       scorer=dict(type='Entropy'),
                       selection=dict(_delete_=True, type='RegimeSwitch', num_classes=10,
                                      low=dict(type='TypiClust'), high=dict(type='TopK')),
                       features=dict(source='self_supervised'))
