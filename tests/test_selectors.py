"""The registered selectors against brute-force or published reference algorithms on small cases."""
import itertools
import math
import warnings

import pytest
import torch

from mmal.registry import SELECTORS
from mmal.scoring import functional as F
from mmal.selection import badge, batchbald, kmeans, neighbours, probcover, typiclust
from mmal.selection.power import log_weights


def blobs(sizes, dim=8, spread=0.05, seed=0):
    """Well-separated Gaussian blobs; returns (points, blob of each point)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(len(sizes), dim, generator=g, dtype=torch.float64) * 5
    x = torch.cat([c + spread * torch.randn(n, dim, generator=g, dtype=torch.float64) for c, n in zip(centers, sizes)])
    return x, torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def none_labeled(n):
    return torch.zeros(n, dtype=torch.bool)


# -- TopK ------------------------------------------------------------------------------------------
def test_topk_breaks_ties_randomly_but_reproducibly():
    scores = torch.zeros(50)  # a weak model: every image alike
    by_index = SELECTORS.build(dict(type='TopK', tie_break='index')).select(5, scores, {}, none_labeled(50))
    assert by_index.tolist() == [0, 1, 2, 3, 4]
    a = SELECTORS.build(dict(type='TopK', seed=3)).select(5, scores, {}, none_labeled(50))
    b = SELECTORS.build(dict(type='TopK', seed=3)).select(5, scores, {}, none_labeled(50))
    c = SELECTORS.build(dict(type='TopK', seed=4)).select(5, scores, {}, none_labeled(50))
    assert a.tolist() == b.tolist() != c.tolist() and a.tolist() != [0, 1, 2, 3, 4]
    scores[7] = 1.0  # ties never reorder distinct scores
    assert SELECTORS.build(dict(type='TopK', seed=3)).select(1, scores, {}, none_labeled(50)).tolist() == [7]


def test_subset_size_restricts_candidates_for_any_selector():
    sel = SELECTORS.build(dict(type='BADGE', subset_size=7, seed=1))
    picked = sel.candidates(list(range(100, 200)))
    assert len(picked) == 7 and set(picked) <= set(range(100, 200))
    assert SELECTORS.build(dict(type='RandomSubsetTopK', seed=1)).subset_size == 10000
    with pytest.raises(ValueError, match='subset_size must be a positive integer'):
        SELECTORS.build(dict(type='TopK', subset_size=0))


# -- BADGE -----------------------------------------------------------------------------------------
def dense_badge(probs, h, budget, generator):
    """BADGE's init_centers on materialised gradient embeddings (as the authors' code)."""
    g, _ = badge.gradient_embedding(probs, h)
    emb = (g[:, :, None] * h[:, None, :]).flatten(1).double()
    picks = [int((emb * emb).sum(1).argmax())]
    while len(picks) < budget:
        d2 = torch.cdist(emb, emb[picks]).pow(2).amin(1)
        d2[picks] = 0
        picks.append(int(torch.multinomial(d2, 1, generator=generator)))
    return picks


def test_badge_gradient_embedding_and_factored_seeding_equal_the_dense_algorithm():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(40, 5, generator=gen, dtype=torch.float64) * 2, -1)
    h = torch.randn(40, 7, generator=gen, dtype=torch.float64)
    g, _ = badge.gradient_embedding(probs, h)
    expected = probs.clone()
    expected[torch.arange(40), probs.argmax(1)] -= 1  # d CE(p, argmax p) / d logits
    assert torch.allclose(g, expected)
    got = badge.kmeans_pp_factored(g, h, 12, torch.arange(40), torch.Generator().manual_seed(5))
    assert got.tolist() == dense_badge(probs, h, 12, torch.Generator().manual_seed(5))


def test_badge_pools_boxes_by_largest_gradient_and_never_picks_labeled():
    sel = SELECTORS.build(dict(type='BADGE', seed=0))
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]])
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    inputs = sel.image_inputs({'probs': probs, 'last_layer_input': h, 'image_index': torch.tensor([0, 0, 2]),
                               'num_images': 3})
    # image 0: box 1 (|g|·|h| = 0.707) beats box 0 (0.141); image 1 has no box: zero embedding
    assert torch.allclose(inputs[badge.INPUT], torch.tensor([[0.0, 1.0], [0.0, 0.0], [2.0, 2.0]]))
    labeled = torch.tensor([False, True, False])
    assert sorted(sel.select(5, None, inputs, labeled).tolist()) == [0, 2]


# -- TypiClust -------------------------------------------------------------------------------------
def test_typicality_equals_brute_force():
    x = torch.randn(25, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for k in (1, 4, 24):
        want = []
        for i in range(25):
            d = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(25) if j != i)
            want.append(1 / (sum(d[:k]) / k + 1e-5))
        assert torch.allclose(typiclust.typicality(x, k, chunk=7), torch.tensor(want, dtype=x.dtype))


def reference_typiclust(x, assign, labeled, budget, min_size=5, k_nn=20):
    """The authors' TypiClust.select_samples, transcribed (pandas sort -> sorted())."""
    labels = assign.clone()
    sizes = torch.bincount(assign)
    existing = torch.bincount(assign[labeled], minlength=len(sizes))
    order = sorted([c for c in range(len(sizes)) if sizes[c] > min_size], key=lambda c: (existing[c], -sizes[c], c))
    labels[labeled] = -1
    selected = []
    for i in range(budget):
        cluster = order[i % len(order)]
        indices = (labels == cluster).nonzero().squeeze(1)
        typ = typiclust.typicality(x[indices], min(k_nn, len(indices) // 2))
        selected.append(int(indices[typ.argmax()]))
        labels[selected[-1]] = -1
    return selected


def test_typiclust_follows_the_authors_algorithm(monkeypatch):
    x, blob = blobs([30, 20, 12, 4], dim=4, spread=0.5)
    x = torch.nn.functional.normalize(x.float(), dim=1)
    labeled = torch.zeros(len(x), dtype=torch.bool)
    labeled[[0, 1, 31]] = True
    monkeypatch.setattr(typiclust, 'kmeans', lambda pts, k, *a, **kw: (blob, None))  # the same clusters
    got = SELECTORS.build(dict(type='TypiClust')).select(7, None, {'features': x}, labeled).tolist()
    assert got == reference_typiclust(x, blob, labeled, 7)
    # fewest labeled first (blob 2: none, blob 1: one, blob 0: two); the 4-point blob is never visited
    assert [int(blob[i]) for i in got[:3]] == [2, 1, 0] and 3 not in blob[got].tolist()


def test_typiclust_end_to_end_covers_every_blob_first():
    x, blob = blobs([40, 30, 20, 15])
    labeled = torch.zeros(len(x), dtype=torch.bool)
    picks = SELECTORS.build(dict(type='TypiClust', seed=0)).select(4, None, {'features': x}, labeled)
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]


def test_kmeans_recovers_separated_blobs():
    x, blob = blobs([50, 30, 20])
    assign, centers = kmeans(x, 3, torch.Generator().manual_seed(0))
    assert all(len(set(assign[blob == b].tolist())) == 1 for b in range(3)) and len(set(assign.tolist())) == 3


# -- ProbCover -------------------------------------------------------------------------------------
def test_ball_graph_equals_brute_force():
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    indptr, indices = neighbours.radius_graph(x, 1.2, chunk=7)
    for i in range(30):
        want = [j for j in range(30) if float(((x[i] - x[j]) ** 2).sum()) < 1.2 ** 2]
        assert indices[indptr[i]:indptr[i + 1]].tolist() == want


def reference_probcover(balls, labeled, budget):
    """The authors' ProbCover.select_samples on explicit balls: pick the max out-degree into
    uncovered points, remove what it covers."""
    covered = set().union(*[balls[i] for i in range(len(balls)) if labeled[i]])
    picks = []
    for _ in range(budget):
        degree = [len(balls[i] - covered) if not labeled[i] and i not in picks else -1 for i in range(len(balls))]
        best = max(range(len(balls)), key=lambda i: (degree[i], -i))
        if degree[best] <= 0:
            break
        picks.append(best)
        covered |= balls[best]
    return picks


def test_greedy_cover_equals_the_authors_algorithm():
    x = torch.randn(60, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    labeled = torch.zeros(60, dtype=torch.bool)
    labeled[[3, 17]] = True
    indptr, indices = neighbours.radius_graph(x, 0.6)
    balls = [set(indices[indptr[i]:indptr[i + 1]].tolist()) for i in range(60)]
    want = reference_probcover(balls, labeled.tolist(), 60)
    got = probcover.greedy_cover(indptr, indices, labeled, 58, torch.Generator().manual_seed(0)).tolist()
    assert got[:len(want)] == want
    # once all is covered the rest is uniform among the unlabeled, none twice
    assert len(set(got)) == 58 and not labeled[got].any()


def test_estimated_delta_is_the_largest_radius_with_the_required_purity():
    x, _ = blobs([40, 40, 40], spread=1.0)
    x = x.float()
    delta = probcover.estimate_delta(x, 3, 0.9, sample_size=120, generator=torch.Generator().manual_seed(0))
    assign, _ = kmeans(x, 3, torch.Generator().manual_seed(0))
    d = torch.cdist(x, x)

    def purity(radius):
        return sum(bool((assign[d[i] < radius] == assign[i]).all()) for i in range(len(x))) / len(x)

    assert purity(delta) >= 0.9 - 1 / 120
    assert purity(delta * 1.5 + 1e-3) < purity(delta) or purity(delta) == 1.0


def test_probcover_covers_each_blob_before_a_second_pick_in_one():
    x, blob = blobs([30, 25, 20, 15], spread=0.1)
    picks = SELECTORS.build(dict(type='ProbCover', seed=0, num_classes=4)).select(
        4, None, {'features': x.float()}, none_labeled(len(x)))
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]


# -- BatchBALD -------------------------------------------------------------------------------------
def brute_force_batch_bald(mc, budget):
    """Greedy BatchBALD with the joint entropy enumerated over every label configuration."""
    n, t, c = mc.shape
    conditional = F.entropy(mc).mean(1)
    picks = []
    for _ in range(budget):
        best, best_gain = None, -math.inf
        for x in range(n):
            if x in picks:
                continue
            batch = picks + [x]
            joint = 0.0
            for labels in itertools.product(range(c), repeat=len(batch)):
                p = float(torch.stack([mc[i, :, y] for i, y in zip(batch, labels)]).prod(0).mean())
                joint -= p * math.log(p) if p > 0 else 0.0
            gain = joint - float(conditional[batch].sum())
            if gain > best_gain + 1e-12:
                best, best_gain = x, gain
        picks.append(best)
    return picks


def test_batch_bald_exact_equals_brute_force():
    g = torch.Generator().manual_seed(4)
    mc = torch.softmax(torch.randn(7, 5, 3, generator=g, dtype=torch.float64) * 2, -1)  # [N, T, C]
    got = batchbald.batch_bald(mc, 3, torch.arange(7), num_samples=1000).tolist()
    assert got == brute_force_batch_bald(mc, 3)
    assert got[0] == int(F.bald(mc.transpose(0, 1)).argmax())  # the first pick is plain BALD's


@pytest.mark.parametrize('num_samples', [1000, 9])  # 9 < 3^3: the third pick uses sampled configurations
def test_batch_bald_does_not_take_a_duplicate_that_top_k_bald_takes(num_samples):
    g = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(1, 8, 3, generator=g, dtype=torch.float64) * 3, -1)
    others = torch.softmax(torch.randn(4, 8, 3, generator=g, dtype=torch.float64) * 1.5, -1)
    mc = torch.cat([a, a, a, others])  # one informative point, three times
    bald = F.bald(mc.transpose(0, 1))
    assert set(bald.topk(3).indices.tolist()) == {0, 1, 2}  # top-k BALD takes the three copies
    picks = batchbald.batch_bald(mc, 3, torch.arange(7), num_samples, torch.Generator().manual_seed(1)).tolist()
    assert len({i for i in picks if i < 3}) == 1  # BatchBALD takes one copy


# -- PowerSampling ---------------------------------------------------------------------------------
def test_power_sampling_draws_proportionally_to_the_score_power():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0])
    counts = torch.zeros(4)
    for seed in range(4000):
        first = SELECTORS.build(dict(type='PowerSampling', seed=seed)).select(1, scores, {}, none_labeled(4))
        counts[first] += 1
    assert torch.allclose(counts / 4000, scores / scores.sum(), atol=0.025)
    # beta -> infinity is top-k; beta = 0 is uniform
    big = SELECTORS.build(dict(type='PowerSampling', beta=1e4, seed=0)).select(3, scores, {}, none_labeled(4))
    assert big.tolist() == [3, 2, 1]
    assert torch.isclose(log_weights(scores, 'softrank', 1.0), -torch.log(torch.tensor([4., 3., 2., 1.],
                                                                                          dtype=torch.float64))).all()


def test_power_sampling_refuses_negative_scores_and_ranks_non_finite_last():
    with pytest.raises(ValueError, match="mode='softmax'"):
        SELECTORS.build(dict(type='PowerSampling')).select(1, torch.tensor([-1.0, 2.0]), {}, none_labeled(2))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        picks = SELECTORS.build(dict(type='PowerSampling', seed=0)).select(
            3, torch.tensor([float('nan'), 0.5, 0.7]), {}, none_labeled(3))
    assert picks.tolist()[-1] == 0


def test_power_sampling_draws_zero_scores_uniformly_and_beta_zero_is_no_nan():
    scores = torch.tensor([0.0] * 6 + [1.0])
    firsts, lasts = set(), set()
    for seed in range(40):
        picks = SELECTORS.build(dict(type='PowerSampling', seed=seed)).select(3, scores, {}, none_labeled(7)).tolist()
        assert picks[0] == 6  # the only image of positive weight comes first
        firsts.add(picks[1])
        lasts.add(picks[2])
    assert len(firsts) >= 5 and len(lasts) >= 5  # the zero scores in a seeded random order, not pool order
    assert not torch.isnan(log_weights(scores, 'power', 0.0)).any()
    uniform = torch.zeros(7)
    for seed in range(2000):
        uniform[SELECTORS.build(dict(type='PowerSampling', beta=0.0, seed=seed)).select(
            1, scores, {}, none_labeled(7))] += 1
    assert torch.allclose(uniform / 2000, torch.full((7, ), 1 / 7), atol=0.03)  # beta = 0: 0^0 = 1, uniform


def test_kmeans_seeding_is_greedy_like_scikit_learn():
    """Greedy k-means++ (scikit-learn's default): at small k the plain seeding ends ~20 % worse."""
    from sklearn.cluster import kmeans_plusplus

    from mmal.selection.kmeans import kmeans_plus_plus, nearest_center

    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(60, 8, generator=g) + 6 * torch.randn(1, 8, generator=g) for _ in range(12)])
    ours, plain, sklearn = [], [], []
    for seed in range(20):
        for picks, out in ((kmeans_plus_plus(x, 6, torch.Generator().manual_seed(seed)), ours),
                           (kmeans_plus_plus(x, 6, torch.Generator().manual_seed(seed), local_trials=1), plain)):
            out.append(float(nearest_center(x, x[picks])[1].sum()))
        centers, _ = kmeans_plusplus(x.numpy(), 6, random_state=seed)
        sklearn.append(float(nearest_center(x, torch.from_numpy(centers))[1].sum()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(ours) <= 1.05 * mean(sklearn)
    assert mean(plain) > mean(ours)


def _exact_mutual_information(mc: torch.Tensor, batch) -> float:
    """I(y_batch; w) by enumerating every label configuration of the batch. ``mc``: [N, T, C]."""
    probs = mc[list(batch)].double()  # [n, T, C]
    joint = torch.ones(1, probs.shape[1], dtype=torch.float64)
    for p in probs:
        joint = (joint[:, None, :] * p.T[None]).reshape(-1, probs.shape[1])
    marginal = joint.mean(1)
    joint_entropy = -float(torch.special.xlogy(marginal, marginal).sum())
    conditional = -float(torch.special.xlogy(probs, probs).sum(2).mean(1).sum())
    return joint_entropy - conditional


def test_batchbald_redraws_its_joint_samples_every_step():
    """The paper's estimator (and batchbald_redux) draws fresh configurations of the whole batch at
    every greedy step; the batches it picks have at least the mutual information of exact greedy
    BatchBALD's less a little, and more than top-k BALD's."""
    ours, exact, topk = [], [], []
    for seed in range(16):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(24, 1, 4, generator=g) * 2 + torch.randn(24, 8, 4, generator=g) * 1.5
        mc = logits.softmax(-1)  # [N, T, C]
        candidates = torch.arange(24)
        picks = batchbald.batch_bald(mc, 6, candidates, 64, torch.Generator().manual_seed(seed)).tolist()
        best = batchbald.batch_bald(mc, 6, candidates, 4 ** 6, None).tolist()  # exact throughout
        ours.append(_exact_mutual_information(mc, picks))
        exact.append(_exact_mutual_information(mc, best))
        topk.append(_exact_mutual_information(mc, F.bald(mc.transpose(0, 1)).topk(6).indices.tolist()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(mean(ours), mean(exact), mean(topk))
    assert mean(ours) > mean(topk) and mean(ours) >= mean(exact) - 0.01


# -- RegimeSwitch ------------------------------------------------------------------------------------
def _switch_case(num_labeled, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(25, 6, generator=g) + 5 * torch.randn(1, 6, generator=g) for _ in range(4)])
    scores = torch.rand(100, generator=g)
    labeled = torch.zeros(100, dtype=torch.bool)
    labeled[torch.randperm(100, generator=g)[:num_labeled]] = True
    return scores, {'features': x}, labeled


@pytest.mark.parametrize('criterion', [dict(switch_labeled=10), dict(switch_per_class=2.5, num_classes=4),
                                       dict(switch_fraction=0.1)])
def test_regime_switch_picks_exactly_as_its_component_on_each_side(criterion):
    for num_labeled, component in ((4, 'TypiClust'), (9, 'TypiClust'), (10, 'TopK'), (30, 'TopK')):
        scores, inputs, labeled = _switch_case(num_labeled)
        switch = SELECTORS.build(dict(type='RegimeSwitch', seed=7, **criterion))
        got = switch.select(5, scores, inputs, labeled)
        alone = SELECTORS.build(dict(type=component, seed=7))
        want = alone.select(5, scores, inputs, labeled)
        assert got.tolist() == want.tolist() and switch.acted_by() == component, (num_labeled, component)


def test_regime_switch_by_coverage_switches_once_the_labeled_set_covers_the_pool():
    scores, inputs, labeled = _switch_case(2)
    switch = SELECTORS.build(dict(type='RegimeSwitch', switch_coverage=0.9, delta=0.5, seed=0))
    switch.select(5, scores, inputs, labeled)
    assert switch.acted_by() == 'TypiClust' and switch.last_coverage < 0.9
    covered = torch.ones(100, dtype=torch.bool)
    covered[:10] = False  # 90 labeled images cover at least 90 % of the pool
    switch.select(5, scores, inputs, covered)
    assert switch.acted_by() == 'TopK' and switch.last_coverage >= 0.9
    assert switch.report() == {'coverage': round(switch.last_coverage, 4)}


def test_regime_switch_default_rule_is_20_labeled_images_per_class():
    scores, inputs, _ = _switch_case(2)
    switch = SELECTORS.build(dict(type='RegimeSwitch', num_classes=2, seed=0))
    assert switch.switch_per_class == 20 and switch.report() == {}
    for count, acting in ((39, 'TypiClust'), (40, 'TopK')):
        labeled = torch.zeros(100, dtype=torch.bool)
        labeled[:count] = True
        switch.select(5, scores, inputs, labeled)
        assert switch.acted_by() == acting


def test_regime_switch_is_checked_when_built():
    with pytest.raises(ValueError, match='one switch point'):
        SELECTORS.build(dict(type='RegimeSwitch', switch_labeled=5, switch_fraction=0.5))
    with pytest.raises(ValueError, match='without a switch point switches at 20 .* needs num_classes'):
        SELECTORS.build(dict(type='RegimeSwitch'))
    with pytest.raises(ValueError, match='needs num_classes'):
        SELECTORS.build(dict(type='RegimeSwitch', switch_per_class=3))
    with pytest.raises(ValueError, match='drop subset_size'):
        SELECTORS.build(dict(type='RegimeSwitch', switch_fraction=0.1, subset_size=50))
    switch = SELECTORS.build(dict(type='RegimeSwitch', switch_labeled=5, low=dict(type='ProbCover')))
    assert switch.uses_scores and switch.needs_labeled and switch.requires == {'features'}
