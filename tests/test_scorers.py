"""Registered scorers: what they require, the shared reduction and ranking path."""
import pytest
import torch

from mmal.registry import SCORERS
from mmal.scoring import functional as F
from mmal.scoring.scorers import Scorer

ALL = {'Random': frozenset(), 'Entropy': {'probs'}, 'VariationRatio': {'probs'}, 'Margin': {'probs'},
       'BALD': {'mc_probs'}, 'MCVariationRatio': {'mc_probs'}, 'Consistency': {'log_probs', 'flip_log_probs'},
       'LossPrediction': {'pred_loss'}}


def _outputs(seed=0, boxes=9, images=4, classes=5, samples=6):
    g = torch.Generator().manual_seed(seed)
    soft = lambda *shape: torch.softmax(torch.randn(*shape, generator=g) * 3, -1)  # noqa: E731
    probs = soft(boxes, classes)
    return {'probs': probs, 'log_probs': probs.log(), 'mc_probs': soft(samples, boxes, classes),
            'flip_log_probs': soft(boxes, classes).log(), 'features': torch.randn(images, 8, generator=g),
            'pred_loss': torch.rand(images, generator=g),
            'image_index': torch.tensor([0, 0, 0, 1, 1, 3, 3, 3, 3]), 'num_images': images}


def test_every_scorer_is_registered_and_declares_its_outputs():
    assert set(ALL) <= set(SCORERS.module_dict)
    for name, needs in ALL.items():
        scorer = SCORERS.build(dict(type=name))
        assert isinstance(scorer, Scorer) and scorer.requires == frozenset(needs), name


@pytest.mark.parametrize('name,fn', [('Entropy', lambda o: F.entropy(o['probs'])),
                                     ('VariationRatio', lambda o: F.variation_ratio(o['probs'])),
                                     ('Margin', lambda o: F.margin(o['probs'])),
                                     ('BALD', lambda o: F.bald(o['mc_probs'])),
                                     ('MCVariationRatio', lambda o: F.mc_variation_ratio(o['mc_probs'])),
                                     ('Consistency',
                                      lambda o: F.symmetric_kl_log(o['log_probs'], o['flip_log_probs']))])
@pytest.mark.parametrize('mode', F.AGGREGATION_MODES)
def test_box_scorers_reduce_per_image(name, fn, mode):
    out = _outputs()
    scorer = SCORERS.build(dict(type=name, aggregation=mode, k=2, empty_score=-1.0))
    want = F.aggregate(fn(out), out['image_index'], 4, mode=mode, k=2, empty=-1.0)
    got = scorer(out)
    assert torch.equal(got, want) and got[2] == -1.0  # image 2 has no box


def test_image_level_outputs_are_not_aggregated():
    out = _outputs()
    per_image = {k: v for k, v in out.items() if k != 'image_index'}
    per_image['probs'] = out['probs'][:4]
    assert torch.equal(SCORERS.build(dict(type='Entropy'))(per_image), F.entropy(per_image['probs']))
    assert torch.equal(SCORERS.build(dict(type='LossPrediction'))(out), out['pred_loss'])


def test_empty_images_can_rank_first():
    out = _outputs()
    scores = SCORERS.build(dict(type='Entropy', empty_score='max'))(out)
    assert scores[2] > scores[[0, 1, 3]].max() and torch.isfinite(scores).all()  # image 2 has no box
    with pytest.raises(ValueError, match="empty_score must be a number or 'max'"):
        SCORERS.build(dict(type='Entropy', empty_score='min'))


def test_every_scorer_accepts_the_cycle_seed_from_the_builder():
    for name in ALL:
        assert SCORERS.build(dict(type=name), default_args=dict(seed=7)).seed == 7


def test_outputs_with_inconsistent_rows_are_refused():
    out = _outputs()
    out['probs'] = out['probs'][:5]
    with pytest.raises(ValueError, match="'probs' has 5 rows on dimension 0, expected 9"):
        SCORERS.build(dict(type='Entropy'))(out)


def test_missing_outputs_are_named():
    with pytest.raises(KeyError, match=r"BALD needs the model outputs \['mc_probs'\]"):
        SCORERS.build(dict(type='BALD'))({'probs': torch.ones(1, 2) / 2, 'num_images': 1})


def test_consistency_of_a_flip_invariant_model_is_zero():
    out = _outputs()
    out['flip_log_probs'] = out['log_probs'].clone()
    assert (SCORERS.build(dict(type='Consistency'))(out) == 0).all()


def test_random_is_seeded():
    a, b = SCORERS.build(dict(type='Random', seed=5)), SCORERS.build(dict(type='Random', seed=5))
    first = a({'num_images': 20})
    assert torch.equal(first, b({'num_images': 20}))
    assert not torch.equal(first, a({'num_images': 20}))  # the stream moves on


def test_scorers_only_score_selection_lives_in_selectors():
    assert 'CoreSet' not in SCORERS.module_dict
    for name in SCORERS.module_dict:
        assert not hasattr(SCORERS.get(name), 'select'), name
