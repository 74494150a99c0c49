"""Runtime pieces: the acquisition method and service, and hooks (registered in mmdet's HOOKS)."""
from .acquisition import AcquisitionResult, AcquisitionService, Shard, build_adapter
from .hooks import ActiveLearningHook, InterruptHook, LLALDetachHook, TrainProgressHook, scoring_model
from .method import AcquisitionMethod, build_method

__all__ = ['AcquisitionMethod', 'build_method', 'AcquisitionService', 'AcquisitionResult', 'Shard', 'build_adapter',
           'scoring_model', 'ActiveLearningHook', 'InterruptHook', 'LLALDetachHook', 'TrainProgressHook']
