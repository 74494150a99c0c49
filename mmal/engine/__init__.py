"""Runtime pieces: the acquisition pass and hooks (registered in mmdet's HOOKS)."""
from .acquisition import pool_loader, score_pool
from .hooks import ActiveLearningHook, TrainProgressHook

__all__ = ['score_pool', 'pool_loader', 'ActiveLearningHook', 'TrainProgressHook']
