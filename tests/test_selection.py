"""Selection: top-k ties and non-finite scores, the diversity heuristic, k-center greedy."""
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from mmal.selection import k_center_greedy, random_selection, random_subset_then_top_k, top_k


def test_top_k_order_and_ties():
    scores = torch.tensor([0.2, 0.9, 0.5, 0.9, 0.5])
    assert top_k(scores, 3).tolist() == [1, 3, 2]  # equal scores: lower index first
    assert top_k(scores, 10).tolist() == [1, 3, 2, 4, 0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(0, 320), st.integers(1, 6), st.integers(0, 10**6), st.booleans())
def test_top_k_equals_a_stable_sort_of_the_whole_pool(n, k, levels, seed, with_nan):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (n, ), generator=g).float()  # few levels: many ties at the cut-off
    if with_nan:
        scores[torch.randperm(n, generator=g)[:n // 5]] = float('nan')
    key = torch.where(torch.isfinite(scores), scores, torch.tensor(-float('inf')))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        assert top_k(scores, k).tolist() == key.argsort(descending=True, stable=True)[:k].tolist()


def test_non_finite_scores_rank_last_with_one_warning():
    scores = torch.tensor([1.0, float('nan'), float('inf'), 0.5, -float('inf')])
    with pytest.warns(RuntimeWarning, match='3 of 5 acquisition scores are not finite') as record:
        picks = top_k(scores, 5)
    assert len(record) == 1
    assert picks.tolist() == [0, 3, 1, 2, 4]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        top_k(torch.tensor([1.0, 2.0]), 1)  # finite scores: no warning


def test_random_subset_then_top_k():
    scores = torch.arange(100, dtype=torch.float32)
    picks = random_subset_then_top_k(scores, 5, subset_size=20, generator=torch.Generator().manual_seed(0))
    subset = torch.randperm(100, generator=torch.Generator().manual_seed(0))[:20]
    assert picks.tolist() == sorted(subset.tolist(), reverse=True)[:5]  # top 5 of the subset only
    again = random_subset_then_top_k(scores, 5, subset_size=20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picks, again)
    # A subset larger than the pool is the whole pool.
    assert random_subset_then_top_k(scores, 3, subset_size=10**6).tolist() == [99, 98, 97]


def test_random_selection_reproducible_and_distinct():
    a = random_selection(50, 10, torch.Generator().manual_seed(3))
    b = random_selection(50, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len(set(a.tolist())) == 10


def farthest_first_gaps(x, labeled, picks):
    """For each pick: how far its distance to the centers so far falls short of the farthest
    unlabeled point's (0 for a valid farthest-first step; ties may go either way)."""
    centers = [i for i in range(x.shape[0]) if labeled[i]]
    gaps = []
    for k, pick in enumerate(picks):
        chosen = centers + list(picks[:k])

        def dist(i):
            if not chosen:
                return float(((x[i] - x.mean(0)) ** 2).sum())
            return min(float(((x[i] - x[c]) ** 2).sum()) for c in chosen)

        best = max(dist(i) for i in range(x.shape[0]) if not labeled[i] and i not in chosen)
        gaps.append(best - dist(pick))
    return gaps


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 10), st.integers(1, 45), st.integers(0, 10**6))
def test_k_center_greedy_is_farthest_first(n, dim, num_labeled, budget, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    labeled = torch.zeros(n, dtype=torch.bool)
    labeled[torch.randperm(n, generator=g)[:min(num_labeled, n)]] = True
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # budget may exceed the unlabeled count
        got = k_center_greedy(x, labeled, budget, chunk_size=3).tolist()
    assert len(got) == min(budget, n - int(labeled.sum())) and len(set(got)) == len(got)
    assert not any(labeled[i] for i in got)
    # every pick is a farthest point, up to rounding (exact ties may break either way)
    assert max(farthest_first_gaps(x, labeled.tolist(), got), default=0.0) < 1e-9


def test_k_center_greedy_index_input_and_exhaustion():
    x = torch.randn(10, 4)
    by_mask = k_center_greedy(x, torch.tensor([True] * 3 + [False] * 7), 4)
    by_index = k_center_greedy(x, torch.tensor([0, 1, 2]), 4)
    assert torch.equal(by_mask, by_index)
    with pytest.warns(RuntimeWarning, match='exceeds the 7 unlabeled'):
        picks = k_center_greedy(x, torch.tensor([0, 1, 2]), 20)
    assert sorted(picks.tolist()) == list(range(3, 10))


def test_k_center_greedy_never_picks_exact_duplicates_while_farther_points_remain():
    g = torch.Generator().manual_seed(0)
    groups = torch.randn(12, 16, generator=g) * 10
    x = groups.repeat_interleave(3, dim=0)  # 12 distinct points, each 3 times: 36 rows
    labeled = torch.zeros(36, dtype=torch.bool)
    labeled[[0, 4]] = True  # one copy of group 0 and of group 1
    picks = k_center_greedy(x, labeled, 10)
    picked_groups = (picks // 3).tolist()
    assert len(set(picked_groups)) == 10 and not {0, 1} & set(picked_groups)


def test_k_center_greedy_float32_matches_float64_picks():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 32, generator=g, dtype=torch.float64)
    labeled = torch.arange(0, 500, 25)
    assert torch.equal(k_center_greedy(x.float(), labeled, 50), k_center_greedy(x, labeled, 50))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_k_center_greedy_cuda_matches_cpu():
    x = torch.randn(2000, 64, dtype=torch.float64)
    labeled = torch.arange(0, 2000, 40)
    cpu = k_center_greedy(x, labeled, 100)
    gpu = k_center_greedy(x.cuda(), labeled.cuda(), 100)
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)


def test_scoring_and_selection_import_no_mmdet():
    code = ('import importlib.abc, sys\n'
            'class Block(importlib.abc.MetaPathFinder):\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            '        if name.split(".")[0] == "mmdet": raise ImportError("mmdet blocked")\n'
            'sys.meta_path.insert(0, Block())\n'
            'import torch, mmal.scoring.functional as F, mmal.selection as S, mmal.scoring.review\n'
            'import mmal.scoring.agreement, mmal.scoring.estimate\n'
            'from mmal.registry import SCORERS\n'
            'p = torch.tensor([[0.5, 0.5]])\n'
            'print(round(F.entropy(p).item(), 4), S.top_k(torch.tensor([1., 3.]), 1).item(),\n'
            '      SCORERS.build(dict(type="Entropy"))({"probs": p, "num_images": 1}).tolist(),\n'
            '      any(m.split(".")[0] == "mmdet" for m in sys.modules))\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['0.6931', '1', '[0.6931471824645996]', 'False']
