"""The acquisition service end to end in-process: every scorer/selector branch, unreadable images,
seeds and bad combinations, on a fake adapter over an in-memory pool (no model, no files)."""
import pytest
import torch
from torch.utils.data import Dataset

from mmal.engine import AcquisitionService, build_method
from mmal.errors import UserError
from mmal.models import BaseAdapter
from mmal.registry import ADAPTERS, SCORERS, SELECTORS
from mmal.scoring import functional as F
from mmal.selection import k_center_greedy, top_k

SEEN = []  # pool indices the fake adapter was asked to score, in order


class ToyPool(Dataset):
    """``n`` in-memory "images" (8-d vectors); some unreadable (file errors), some broken (a bug)."""

    def __init__(self, n=40, unreadable=(), broken=()):
        self.x = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
        self.unreadable, self.broken = set(unreadable), set(broken)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i in self.unreadable:
            raise FileNotFoundError(f'No such file: /pool/{i}.jpg')
        if i in self.broken:
            raise ValueError('a bug in the pipeline')
        return dict(x=self.x[i], index=i)

    def get_data_info(self, i):
        return dict(img_id=str(i), img_path=f'/pool/{i}.jpg')


@ADAPTERS.register_module(force=True)
class FakeAdapter(BaseAdapter):
    """Class probabilities of a fixed linear model; the vector itself as features; MC samples by
    perturbing the logits."""
    provides = frozenset({'probs', 'log_probs', 'mc_probs', 'features', 'last_layer_input'})
    weight = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)) * 2

    def __call__(self, data):
        x = torch.stack(data['x'])
        SEEN.extend(data['index'])
        logits = x @ self.weight
        out = {'num_images': len(x)}
        for key, value in (('probs', logits.softmax(-1)), ('log_probs', logits.log_softmax(-1)), ('features', x),
                           ('last_layer_input', x)):
            if key in self.requires:
                out[key] = value
        if 'mc_probs' in self.requires:
            noise = torch.randn(5, *logits.shape, generator=torch.Generator().manual_seed(len(SEEN)))
            out['mc_probs'] = (logits + noise).softmax(-1)
        return out


def run(scorer, selection, pool=None, labeled=(0, 1, 2, 3), budget=5, seed=0, batch_size=4, cost=None):
    SEEN.clear()
    service = AcquisitionService(build_method(scorer, selection, seed=seed), dict(type='FakeAdapter'),
                                 batch_size=batch_size, progress=False)
    pool = pool or ToyPool()
    return service.run(None, pool, list(labeled), budget, cost=cost), pool


def entropy_of(pool, indices):
    return F.entropy((pool.x[indices] @ FakeAdapter.weight).softmax(-1))


def test_topk_ranks_the_unlabeled_pool_by_score():
    result, pool = run(dict(type='Entropy'), dict(type='TopK', tie_break='index'))
    unlabeled = list(range(4, 40))
    want = [unlabeled[i] for i in top_k(entropy_of(pool, unlabeled), 5).tolist()]
    assert result.picks == want and result.num_candidates == 36
    assert result.scores == pytest.approx(entropy_of(pool, want).tolist())
    assert sorted(SEEN) == unlabeled  # labeled images are never scored by a ranking selector


def test_random_subset_scores_only_the_subset():
    result, _ = run(dict(type='Entropy'), dict(type='RandomSubsetTopK', subset_size=10))
    assert len(SEEN) == 10 and result.num_candidates == 10 and set(result.picks) <= set(SEEN)


def test_kcenter_reads_the_labeled_features_too_and_runs_k_center_greedy():
    result, pool = run(None, dict(type='KCenterGreedy', chunk_size=2))
    assert sorted(SEEN) == list(range(40)) and result.scores is None
    mask = torch.zeros(40, dtype=torch.bool)
    mask[:4] = True
    rows = list(range(4, 40)) + [0, 1, 2, 3]  # candidates, then the labeled rows
    order = k_center_greedy(pool.x[rows], mask[rows], 5)
    assert result.picks == [rows[i] for i in order.tolist()]


@pytest.mark.parametrize('selection', [dict(type='BADGE'), dict(type='TypiClust'), dict(type='ProbCover'),
                                       dict(type='BatchBALD', num_samples=64), dict(type='KCenterGreedy')])
def test_selectors_without_a_scorer_pick_unlabeled_images_once(selection):
    result, _ = run(None, selection, budget=6)
    assert len(result.picks) == 6 and len(set(result.picks)) == 6 and not set(result.picks) & {0, 1, 2, 3}


def test_badge_through_the_service_equals_the_selector_on_the_same_inputs():
    result, pool = run(None, dict(type='BADGE'), seed=3)
    rows = list(range(4, 40))
    probs = (pool.x[rows] @ FakeAdapter.weight).softmax(-1)
    selector = SELECTORS.build(dict(type='BADGE', seed=3))
    inputs = selector.image_inputs({'probs': probs, 'last_layer_input': pool.x[rows], 'num_images': len(rows)})
    want = selector.select(5, None, inputs, torch.zeros(len(rows), dtype=torch.bool))
    assert result.picks == [rows[i] for i in want.tolist()]


def test_power_sampling_is_seeded_through_the_service():
    a, _ = run(dict(type='Entropy'), dict(type='PowerSampling'), seed=1)
    b, _ = run(dict(type='Entropy'), dict(type='PowerSampling'), seed=1)
    c, _ = run(dict(type='Entropy'), dict(type='PowerSampling'), seed=2)
    assert a.picks == b.picks != c.picks


def test_random_needs_no_forward_pass_and_never_picks_an_unreadable_image():
    direct = SCORERS.build(dict(type='Random', seed=9))({'num_images': 36})
    ranked = [list(range(4, 40))[i] for i in top_k(direct, 36).tolist()]
    pool = ToyPool(unreadable=ranked[:3])  # the three images Random would pick first
    result, _ = run(dict(type='Random'), dict(type='TopK'), pool=pool, seed=9)
    assert SEEN == []  # no image was scored
    assert result.picks == ranked[3:8]  # the seed reached the scorer through the builder
    assert sorted(result.unreadable) == sorted(ranked[:3])


def test_random_over_a_pool_of_only_unreadable_images_is_an_error():
    with pytest.raises(UserError, match='none of the 36 candidate pool images could be read'):
        run(dict(type='Random'), dict(type='TopK'), pool=ToyPool(unreadable=range(4, 40)))


def test_unreadable_images_are_skipped_and_reported():
    result, _ = run(dict(type='Entropy'), None, pool=ToyPool(unreadable=[5, 6]))
    assert set(result.unreadable) == {5, 6} and 'FileNotFoundError' in result.unreadable[5]
    assert not {5, 6} & set(result.picks) and len(result.picks) == 5


def test_a_pipeline_bug_is_not_passed_off_as_an_unreadable_image():
    with pytest.raises(ValueError, match='a bug in the pipeline'):
        run(dict(type='Entropy'), None, pool=ToyPool(broken=[7]))


def test_a_pool_nothing_of_which_can_be_read_is_an_error():
    with pytest.raises(UserError, match=r'none of the 36 candidate pool images could be read \(e.g. /pool/4.jpg'):
        run(dict(type='Entropy'), None, pool=ToyPool(unreadable=range(40)))


def test_budget_larger_than_the_pool_takes_what_is_left():
    result, _ = run(dict(type='Entropy'), None, budget=100)
    assert sorted(result.picks) == list(range(4, 40))
    result, _ = run(dict(type='Entropy'), None, labeled=range(40), budget=3)
    assert result.picks == [] and result.num_candidates == 0


@pytest.mark.parametrize('scorer,selection,message', [
    (dict(type='CoreSet'), None, "CoreSet is a selection, not a scorer: use selection=dict"),
    (dict(type='Entropy'), dict(type='BADGE'), 'selection BADGE ranks no score, so the scorer Entropy would be'),
    (dict(type='Random'), 'coreset', 'selection KCenterGreedy ranks no score, so the scorer Random'),
    (dict(type='Entropyy'), None, "unknown scorer 'Entropyy'; registered: BALD"),
    (dict(type='Entropy'), dict(type='TopKK'), "unknown selection 'TopKK'; registered: BADGE"),
    (dict(type='Entropy', aggregaton='max'), None, "unexpected keyword argument 'aggregaton'"),
    (dict(type='Entropy'), dict(type='TopK', tie_break='first'), "tie_break must be 'random' or 'index'"),
    (dict(type='Entropy'), 'best', "selection 'best' is unknown"),
])
def test_bad_combinations_are_one_sentence(scorer, selection, message):
    with pytest.raises(UserError, match=message.replace('(', r'\(')):
        build_method(scorer, selection)


@pytest.mark.parametrize('scorer,selection,want', [
    (None, None, ('Random', 'TopK')),
    (None, dict(type='PowerSampling'), ('Random', 'PowerSampling')),
    (dict(type='Entropy'), None, ('Entropy', 'TopK')),
    (None, 'random_subset_topk', ('Random', 'RandomSubsetTopK')),
    (None, dict(type='BADGE'), (None, 'BADGE')),
])
def test_one_place_decides_the_defaults(scorer, selection, want):
    method = build_method(scorer, selection)
    assert (method.scorer_cfg and method.scorer_cfg['type'], method.selection_cfg['type']) == want
    assert method.requires == (method.scorer.requires if method.scorer else frozenset()) | method.selector.requires


def test_legacy_subset_size_is_folded_into_the_selection():
    method = build_method(dict(type='Entropy'), 'random_subset_topk', subset_size=7)
    assert method.selection_cfg == dict(type='RandomSubsetTopK', subset_size=7) and method.selector.subset_size == 7
    with pytest.raises(UserError, match="subset_size only goes with selection='random_subset_topk'"):
        build_method(dict(type='Entropy'), dict(type='TopK'), subset_size=7)


def test_a_model_that_cannot_give_the_outputs_fails_before_scoring():
    service = AcquisitionService(build_method(dict(type='Inconsistency')), dict(type='FakeAdapter'))
    with pytest.raises(UserError, match=r"Inconsistency cannot score NoneType: FakeAdapter on NoneType cannot "
                                        r"compute \['aug_probs'\]"):
        service.check_model(None)


def test_regime_switch_through_the_service_records_which_selector_acted():
    switch = dict(type='RegimeSwitch', switch_labeled=6)
    early, _ = run(dict(type='Margin'), switch, labeled=range(4))
    late, _ = run(dict(type='Margin'), switch, labeled=range(8))
    assert early.acted_by == 'TypiClust' and late.acted_by == 'TopK'
    assert sorted(SEEN) == list(range(40))  # the labeled rows are read too: their count decides
    topk, _ = run(dict(type='Margin'), dict(type='TopK'), labeled=range(8))
    assert late.picks == topk.picks and late.scores == topk.scores


@pytest.mark.parametrize('selection', [dict(type='TopK'), dict(type='KCenterGreedy'), dict(type='BADGE')])
def test_a_budget_in_boxes_takes_the_selectors_order_until_the_next_pick_would_exceed_it(selection):
    cost = [(i * 7) % 5 for i in range(40)]  # boxes per image: 0 to 4
    scorer = dict(type='Entropy') if selection['type'] == 'TopK' else None
    order, _ = run(scorer, selection, budget=36)  # the selector's own order, 36 images deep
    result, _ = run(scorer, selection, budget=9, cost=cost)
    spent = [sum(cost[i] for i in result.picks[:k + 1]) for k in range(len(result.picks))]
    assert spent[-1] <= 9 and result.picks == order.picks[:len(result.picks)]
    following = order.picks[len(result.picks)]
    assert spent[-1] + cost[following] > 9  # it stopped where the next pick would overshoot
    first, _ = run(scorer, selection, budget=1, cost=[10] * 40)
    assert len(first.picks) == 1  # the first pick is always taken


@pytest.mark.parametrize('selection', [dict(type='TopK'), dict(type='KCenterGreedy')])
def test_an_interrupted_scoring_pass_resumes_from_its_saved_pieces(tmp_path, selection):
    pool = ToyPool(unreadable=(9, ))
    scorer = dict(type='Entropy') if selection['type'] == 'TopK' else None

    def acquire():
        SEEN.clear()
        service = AcquisitionService(build_method(scorer, selection, seed=0), dict(type='FakeAdapter'),
                                     batch_size=4, progress=False, shard_dir=str(tmp_path / 'pieces'))
        service.piece_size = 8
        return service.run(None, pool, [0, 1, 2, 3], 5)

    whole = acquire()
    pieces = sorted((tmp_path / 'pieces').iterdir())
    rows = 36 + (4 if selection['type'] == 'KCenterGreedy' else 0)  # the labeled rows too, for k-center
    assert len(pieces) == -(-rows // 8) and len(SEEN) == rows - 1  # (one unreadable)
    pieces[1].unlink()  # the pass was interrupted in its second piece
    again = acquire()
    assert len(SEEN) == 8 and again == whole  # only that piece was scored again
    pieces[2].write_bytes(b'damaged')
    assert acquire() == whole and len(SEEN) == 8
