# The toy VOC set (toyvoc_data.py) as the data of a config whose other bases have none (a model-only
# base such as mmdet::_base_/models/retinanet_r50_fpn.py): it stands in for mmdet's own VOC data.
_base_ = ['mmdet::_base_/datasets/voc0712.py', './toyvoc_data.py']

train_dataloader = {{_base_.toy_train_dataloader}}
val_dataloader = {{_base_.toy_val_dataloader}}
test_dataloader = {{_base_.toy_test_dataloader}}
val_evaluator = {{_base_.toy_val_evaluator}}
test_evaluator = {{_base_.toy_test_evaluator}}
