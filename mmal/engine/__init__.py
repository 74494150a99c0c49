"""Runtime pieces: the acquisition pass and hooks (registered in mmdet's HOOKS)."""
from .acquisition import build_adapter, pool_loader, score_pool
from .hooks import ActiveLearningHook, LLALDetachHook, TrainProgressHook

__all__ = ['build_adapter', 'score_pool', 'pool_loader', 'ActiveLearningHook', 'LLALDetachHook', 'TrainProgressHook']
