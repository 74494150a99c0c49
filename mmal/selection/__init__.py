"""Selection: top-k, the random-subset diversity heuristic, k-center greedy. Pure torch."""
from .selection import (k_center_greedy, random_selection, random_subset, random_subset_then_top_k,
                        top_k)

__all__ = ['top_k', 'random_subset', 'random_selection', 'random_subset_then_top_k', 'k_center_greedy']
