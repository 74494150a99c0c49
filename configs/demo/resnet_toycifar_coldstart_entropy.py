# Cold start on the toy CIFAR-10 (500 pool images, 10 classes), entropy: a small start (20 labels, +20 per
# cycle); the README's cold-start table also runs it from a medium start with
# --cfg-options active_learning.initial_labeled=100 active_learning.budget=50.
_base_ = './resnet_toycifar_al.py'

active_learning = dict(initial_labeled=20, budget=20, num_cycles=4, num_trials=3,
                       scorer=dict(type='Entropy'), selection=dict(_delete_=True, type='TopK'))
