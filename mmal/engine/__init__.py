"""Runtime pieces: the acquisition pass and hooks (registered in mmdet's HOOKS)."""
from .acquisition import score_pool
from .hooks import ActiveLearningHook

__all__ = ['score_pool', 'ActiveLearningHook']
