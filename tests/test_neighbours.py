"""Exact and faiss neighbourhoods (mmal.selection.neighbours): faiss finds only true neighbours,
most of them, and the selectors refuse what cannot run with one sentence."""
import pytest
import torch

from mmal.registry import SELECTORS
from mmal.selection import neighbours, probcover, typiclust


def clustered(n=4000, dim=16, clusters=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g) * 3
    x = centres[torch.randint(0, clusters, (n, ), generator=g)] + torch.randn(n, dim, generator=g)
    return torch.nn.functional.normalize(x, dim=1)


def edges(indptr, indices):
    rows = torch.repeat_interleave(torch.arange(len(indptr) - 1), indptr[1:] - indptr[:-1])
    return set(zip(rows.tolist(), indices.tolist()))


def test_faiss_radius_graph_holds_only_true_neighbours_and_most_of_them():
    x = clustered()
    delta = 0.45
    exact = edges(*neighbours.radius_graph(x, delta, search='exact'))
    indptr, indices = neighbours.radius_graph(x, delta, search='faiss', nprobe=8)
    approx = edges(indptr, indices)
    assert all((j, i) in approx for i, j in approx) and all((i, i) in approx for i in range(len(x)))
    for i, j in approx - exact:  # only pairs at the radius, by rounding
        assert abs(float((x[i] - x[j]).norm()) - delta) < 1e-4
    recall = len(approx & exact) / len(exact)
    assert 0.9 < recall  # (nprobe 8 of ~250 cells)
    for row in range(len(x)):  # each row ascending, as greedy_cover's CSR expects
        cols = indices[indptr[row]:indptr[row + 1]]
        assert bool((cols[1:] > cols[:-1]).all())


def test_faiss_knn_distances_are_never_below_the_exact_ones():
    x = clustered()
    exact = neighbours.knn_sq_distances(x, 10, search='exact')
    approx = neighbours.knn_sq_distances(x, 10, search='faiss', nprobe=8)
    assert approx.shape == exact.shape and bool((approx >= exact - 1e-5).all())
    found = (approx - exact).abs().max(1).values < 1e-5  # rows whose 10 neighbours were all found
    assert found.float().mean() > 0.8
    high = neighbours.knn_sq_distances(x, 10, search='faiss', nprobe=10_000)  # every cell: exact
    assert torch.allclose(high, exact, atol=1e-5)


def test_auto_search_is_exact_below_the_threshold_and_without_faiss(monkeypatch):
    x = clustered(600)
    exact = neighbours.radius_graph(x, 0.45, search='exact')
    monkeypatch.setattr(neighbours, 'ANN_MIN_ROWS', 100)
    monkeypatch.setattr(neighbours, '_faiss', lambda: None)
    auto = neighbours.radius_graph(x, 0.45, search='auto')
    assert all(torch.equal(a, b) for a, b in zip(auto, exact))
    with pytest.raises(ValueError, match=r"search='faiss' needs faiss-cpu, which is not installed: pip install"):
        SELECTORS.build(dict(type='ProbCover', search='faiss'))
    with pytest.raises(ValueError, match='search must be one of auto, exact, faiss'):
        SELECTORS.build(dict(type='TypiClust', search='hnsw'))


def test_typiclust_on_faiss_picks_as_exact_when_every_cell_is_scanned(monkeypatch):
    x = clustered(3000)
    labeled = torch.zeros(3000, dtype=torch.bool)
    labeled[:30] = True
    picks = {}
    for search, nprobe in (('exact', 1), ('faiss', 10_000)):
        selector = SELECTORS.build(dict(type='TypiClust', seed=0, max_clusters=3, search=search, nprobe=nprobe))
        picks[search] = selector.select(6, None, {'features': x}, labeled).tolist()
    assert picks['exact'] == picks['faiss']
    assert torch.allclose(typiclust.typicality(x[:500], 5, 'faiss', 10_000), typiclust.typicality(x[:500], 5))


def test_probcover_on_faiss_covers_as_much_as_exact():
    x = clustered(3000)
    labeled = torch.zeros(3000, dtype=torch.bool)
    labeled[:10] = True
    coverage = {}
    for search in ('exact', 'faiss'):
        selector = SELECTORS.build(dict(type='ProbCover', seed=0, delta=0.45, search=search, nprobe=8))
        picks = selector.select(30, None, {'features': x}, labeled)
        indptr, indices = neighbours.radius_graph(x, 0.45, search='exact')
        covered = torch.zeros(3000, dtype=torch.bool)
        covered[probcover.neighbours_of(indptr, indices, torch.cat([picks, labeled.nonzero()[:, 0]]))] = True
        coverage[search] = float(covered.float().mean())
    assert coverage['faiss'] >= coverage['exact'] - 0.01


def test_probcover_refuses_a_graph_too_large_naming_the_fix():
    x = clustered(2000)
    selector = SELECTORS.build(dict(type='ProbCover', seed=0, delta=0.9, max_edges=10_000))
    with pytest.raises(ValueError, match=r"ProbCover's graph at delta=0.9 would hold about .* edges for 2,000 images, "
                                         r'more than max_edges=10,000: select from a random part of the pool '
                                         r'\(selection subset_size=\d[\d,]* or fewer\)'):
        selector.select(5, None, {'features': x}, torch.zeros(2000, dtype=torch.bool))
