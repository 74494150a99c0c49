"""Runtime pieces: the acquisition service and hooks (registered in mmdet's HOOKS)."""
from .acquisition import AcquisitionResult, AcquisitionService, build_adapter, build_method, pool_loader
from .hooks import ActiveLearningHook, LLALDetachHook, TrainProgressHook, scoring_model

__all__ = ['AcquisitionService', 'AcquisitionResult', 'build_adapter', 'build_method', 'pool_loader',
           'scoring_model', 'ActiveLearningHook', 'LLALDetachHook', 'TrainProgressHook']
