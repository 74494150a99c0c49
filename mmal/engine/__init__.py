"""Runtime pieces: the acquisition method and service, and hooks (registered in mmdet's HOOKS)."""
from .acquisition import AcquisitionResult, AcquisitionService, Shard, build_adapter, selection_record
from .class_quality import ClassQualityHook
from .hooks import ActiveLearningHook, InterruptHook, LLALDetachHook, TrainProgressHook, scoring_model
from .method import AcquisitionMethod, build_method, method_from_flags

__all__ = ['AcquisitionMethod', 'build_method', 'method_from_flags', 'AcquisitionService', 'AcquisitionResult',
           'Shard', 'build_adapter', 'selection_record', 'scoring_model', 'ActiveLearningHook', 'InterruptHook',
           'LLALDetachHook', 'TrainProgressHook', 'ClassQualityHook']
