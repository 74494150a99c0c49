"""Exact hand-computed cases and properties of mmal.scoring.functional."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmal.scoring import functional as F

T = torch.tensor


def test_entropy_exact():
    assert F.entropy(T([0.5, 0.5])).item() == pytest.approx(math.log(2))
    assert F.entropy(T([0.25] * 4)).item() == pytest.approx(math.log(4))
    assert F.entropy(T([1.0, 0.0, 0.0])).item() == 0.0  # 0·log 0 = 0, not NaN
    assert F.entropy(T([0.7, 0.2, 0.1])).item() == pytest.approx(0.8018186, abs=1e-6)
    assert F.entropy(T([[0.5, 0.5], [1.0, 0.0]])).shape == (2, )


def test_variation_ratio_and_margin_exact():
    p = T([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    assert F.variation_ratio(p).tolist() == pytest.approx([0.3, 0.6, 0.0])
    assert F.margin(p).tolist() == pytest.approx([0.5, 1.0, 0.0])
    with pytest.raises(ValueError, match='at least 2 classes'):
        F.margin(T([[1.0]]))


def test_mc_variation_ratio_exact():
    onehot = torch.eye(3)
    # T=4 passes vote 0, 0, 1, 2 -> modal class 0 has 2 votes -> 1 - 2/4.
    mc = torch.stack([onehot[0], onehot[0], onehot[1], onehot[2]])[:, None, :]  # [T=4, M=1, C=3]
    assert F.mc_variation_ratio(mc).tolist() == [0.5]
    agree = onehot[[1, 1, 1]][:, None, :] * 0.6 + 0.1  # all passes vote class 1
    assert F.mc_variation_ratio(agree).tolist() == [0.0]


def test_bald_exact():
    disagree = T([[[1.0, 0.0]], [[0.0, 1.0]]])  # [T=2, M=1, C=2]: confident, opposite
    assert F.bald(disagree).item() == pytest.approx(math.log(2))
    same = T([[[0.3, 0.7]], [[0.3, 0.7]]])
    assert F.bald(same).item() == pytest.approx(0.0, abs=1e-7)


def test_symmetric_kl_exact_and_safe_at_zero():
    p, q = T([0.5, 0.5]), T([0.9, 0.1])
    assert F.symmetric_kl(p, q).item() == pytest.approx(0.4394449, abs=1e-6)  # ½(0.5108256 + 0.3680642)
    # A zero against 0.5: ½[0.5·log(1/0.5) + 0.5·log(0.5/1e-8)] = 4.60517..., finite.
    value = F.symmetric_kl(T([1.0, 0.0]), T([0.5, 0.5])).item()
    assert value == pytest.approx(0.5 * (0.5 * math.log(2) + 0.5 * math.log(0.5 / F.KL_EPS)), rel=1e-5)


def test_symmetric_kl_from_log_probabilities_is_exact_on_confident_logits():
    logits = torch.tensor([[40.0, 0.0, -5.0], [0.0, 45.0, 1.0]], dtype=torch.float64)
    log_p, log_q = logits.log_softmax(-1), logits.flip(0).log_softmax(-1)
    p, q = log_p.exp(), log_q.exp()
    exact = 0.5 * ((p - q) * (log_p - log_q)).sum(-1)  # float64, no clamping
    got = F.symmetric_kl_log(log_p.float(), log_q.float())
    assert torch.allclose(got.double(), exact[:1].expand(2), rtol=1e-5)
    clamped = F.symmetric_kl(p.float(), q.float())  # probabilities floored at 1e-8 inside the logs
    assert (exact[0] - clamped[0]).abs() > 10  # the floor loses tens of nats here
    # -inf against -inf contributes nothing; the divergence of a distribution with itself is 0
    inf = torch.tensor([[0.0, -float('inf')]])
    assert F.symmetric_kl_log(inf, inf).item() == 0.0


def test_margin_without_topk_equals_topk_and_handles_ties():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 21, generator=g), -1)
    top2 = probs.topk(2, -1).values
    assert torch.equal(F.margin(probs), 1 - (top2[:, 0] - top2[:, 1]))
    assert F.margin(T([[0.4, 0.4, 0.2]])).item() == 1.0  # a tie for first: no margin


def test_log1mexp_is_accurate_at_both_ends():
    x = torch.tensor([-1e-10, -0.5, -0.7, -30.0], dtype=torch.float64)
    want = torch.tensor([math.log(1e-10), math.log(1 - math.exp(-0.5)), math.log(1 - math.exp(-0.7)),
                         -math.exp(-30.0)], dtype=torch.float64)
    assert torch.allclose(F.log1mexp(x), want, rtol=1e-6)


def test_aggregate_exact_every_mode():
    values, idx = T([1.0, 3.0, 2.0, 5.0, 4.0]), T([0, 0, 0, 2, 2])
    expect = {'max': [3, -1, 5, -1], 'mean': [2, -1, 4.5, -1], 'sum': [6, -1, 9, -1],
              'topk_mean': [2.5, -1, 4.5, -1]}
    for mode, want in expect.items():
        assert F.aggregate(values, idx, 4, mode=mode, k=2, empty=-1.0).tolist() == want, mode
    with pytest.raises(ValueError, match='unknown aggregation'):
        F.aggregate(values, idx, 4, mode='median')


# ---- properties -------------------------------------------------------------------------------
def probability_rows(max_classes=8):
    row = st.lists(st.floats(0, 10, allow_nan=False, width=32), min_size=2, max_size=max_classes)
    return row.filter(lambda r: sum(r) > 1e-3).map(lambda r: T(r, dtype=torch.float64) / sum(r))


@settings(max_examples=200, deadline=None)
@given(probability_rows())
def test_entropy_bounds(p):
    h = F.entropy(p).item()
    assert 0.0 <= h <= math.log(p.numel()) + 1e-9 and math.isfinite(h)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_bald_non_negative(num_classes, num_samples, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_samples, 5, num_classes, generator=g) * 5
    mc = torch.softmax(logits.float(), -1)
    assert (F.bald(mc) >= -1e-6).all()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_symmetric_kl_zero_on_self_and_symmetric(data):
    p = data.draw(probability_rows(6))
    q = data.draw(st.lists(st.floats(0, 10, width=32), min_size=p.numel(), max_size=p.numel())
                  .filter(lambda r: sum(r) > 1e-3).map(lambda r: T(r, dtype=torch.float64) / sum(r)))
    assert F.symmetric_kl(p, p).item() == 0.0
    assert F.symmetric_kl(p, q).item() == F.symmetric_kl(q, p).item()
    assert F.symmetric_kl(p, q).item() >= 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-100, 100, width=32)), max_size=30),
       st.sampled_from(F.AGGREGATION_MODES), st.integers(1, 4))
def test_aggregate_matches_python_loop(boxes, mode, k):
    num_images = 6
    idx = torch.tensor([b[0] for b in boxes], dtype=torch.long)
    values = torch.tensor([b[1] for b in boxes], dtype=torch.float64)
    got = F.aggregate(values, idx, num_images, mode=mode, k=k, empty=-7.0).tolist()
    for image in range(num_images):
        vals = sorted((v for i, v in boxes if i == image), reverse=True)
        if not vals:
            want = -7.0
        elif mode == 'max':
            want = vals[0]
        elif mode == 'sum':
            want = sum(vals)
        elif mode == 'mean':
            want = sum(vals) / len(vals)
        else:
            want = sum(vals[:k]) / len(vals[:k])
        assert got[image] == pytest.approx(want, abs=1e-9), (image, mode)
