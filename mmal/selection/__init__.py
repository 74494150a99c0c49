"""Batch selection: ranking functions and the registered selectors (``SELECTORS``). Pure torch.

``top_k``, ``random_subset_then_top_k`` and ``k_center_greedy`` are plain functions; the
selectors (``TopK``, ``RandomSubsetTopK``, ``KCenterGreedy``, ``BADGE``, ``TypiClust``,
``ProbCover``, ``BatchBALD``, ``PowerSampling``, ``CategoryMatching``) are what a run names in
``active_learning.selection``.
"""
from .badge import BADGE
from .base import FeatureSelector, Selector, random_subset, ranking_key
from .batchbald import BatchBALD, batch_bald
from .category_matching import CategoryMatching, k_medoids, matching_distances
from .kcenter import KCenterGreedy, k_center_greedy
from .kmeans import kmeans
from .power import PowerSampling
from .probcover import ProbCover
from .switch import RegimeSwitch
from .topk import RandomSubsetTopK, TopK, random_selection, random_subset_then_top_k, top_k
from .typiclust import TypiClust

__all__ = ['Selector', 'FeatureSelector', 'ranking_key', 'top_k', 'random_subset', 'random_selection',
           'random_subset_then_top_k',
           'k_center_greedy', 'kmeans', 'batch_bald', 'TopK', 'RandomSubsetTopK', 'KCenterGreedy', 'BADGE',
           'TypiClust', 'ProbCover', 'BatchBALD', 'PowerSampling', 'RegimeSwitch', 'CategoryMatching', 'k_medoids',
           'matching_distances']
