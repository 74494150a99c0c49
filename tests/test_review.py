"""Review scores of returned labels (mmal.scoring.review): each error type scores highest on the
box that has it, the scores are bounded and finite, and chunking changes nothing."""
import pytest
import torch

from mmal.scoring.review import ReviewInputs, box_iou, class_thresholds, review

#: One image: five labels, six predictions of a model that had not seen them.
LABELS = ([[0, 0, 10, 10],      # 0: right (class 0), a prediction agrees
           [20, 0, 30, 10],     # 1: wrong class: labeled 1, the model says 0 confidently
           [40, 0, 50, 10],     # 2: spurious: nothing there
           [60, 0, 70, 10],     # 3: badly located: the object is 5 px to the right
           [80, 0, 90, 10]],    # 4: right (class 1)
          [0, 1, 0, 0, 1])
PREDICTIONS = ([[0, 0, 10, 10], [20, 0, 30, 10], [65, 0, 75, 10], [80, 0, 90, 10], [100, 0, 110, 10],
                [0, 20, 10, 30]],
               [0.9, 0.9, 0.9, 0.8, 0.85, 0.1],  # 4: confident, no label: missing; 5: unconfident, no label
               [0, 0, 0, 1, 1, 0])


def scored(**kwargs):
    return review(ReviewInputs.from_lists([PREDICTIONS], [LABELS]), num_classes=2, **kwargs)


def test_each_error_scores_highest_on_the_box_that_has_it():
    s = scored()
    assert s.missing[0].argmax().item() == 4
    assert s.missing[0, 5].item() == 0  # below its class's threshold
    assert s.missing[0, 0].item() == 0  # a label sits on it
    # class 0's confident predictions find 1 of its 3 labels (0; 2 is spurious, 3 is shifted to IoU 1/3): an
    # unsupported label of class 0 weighs 1/3, as much as the model's recall of the class
    assert s.recall.tolist() == pytest.approx([1 / 3, 0.5])
    assert s.spurious[0].argmax().item() == 2 and s.spurious[0, 2].item() == pytest.approx(1 / 3)
    assert s.wrong_class[0].argmax().item() == 1 and s.wrong_class[0, 1].item() > 0.9
    assert s.badly_located[0].argmax().item() == 3
    assert s.badly_located[0, 3].item() == pytest.approx(1 - 5 / 15)  # IoU of a 5 px shift of 10 px boxes: 1/3
    assert s.badly_located[0, 0].item() == 0 and s.wrong_class[0, 0].item() == 0 and s.spurious[0, 0].item() == 0
    assert s.label_scores()[0, [0, 4]].tolist() == [0, 0]
    images = s.image_scores()
    assert images['combined'][0].item() == 1.0 and set(images) == {'missing', 'spurious', 'wrong_class',
                                                                   'badly_located', 'combined'}


def test_thresholds_are_the_mean_score_of_agreeing_predictions():
    inputs = ReviewInputs.from_lists([PREDICTIONS], [LABELS])
    assert class_thresholds(inputs, 2).tolist() == pytest.approx([0.9, 0.8])  # class 0: box 0; class 1: box 3
    assert class_thresholds(inputs, 3)[2].item() == 0.5  # no prediction of class 2 agrees: the default
    # a confident prediction is judged against its class's bar: with a higher bar, box 4 is not confident
    assert scored(thresholds=torch.tensor([0.9, 0.9])).missing[0, 4].item() == 0


def test_images_without_predictions_or_labels_and_chunks():
    gen = torch.Generator().manual_seed(0)
    preds, labels = [], []
    for i in range(60):
        p, g = int(torch.randint(0, 6, (1, ), generator=gen)), int(torch.randint(0, 6, (1, ), generator=gen))
        corner = torch.rand(p + g, 2, generator=gen) * 100
        boxes = torch.cat([corner, corner + 1 + torch.rand(p + g, 2, generator=gen) * 40], 1)
        boxes[:p // 2] = boxes[p:p + p // 2] if g >= p // 2 else boxes[:p // 2]  # some predictions on labels
        preds.append((boxes[:p].tolist(), torch.rand(p, generator=gen).tolist(),
                      torch.randint(0, 3, (p, ), generator=gen).tolist()))
        labels.append((boxes[p:].tolist(), torch.randint(0, 3, (g, ), generator=gen).tolist()))
    preds[0], labels[1] = ([], [], []), ([], [])
    inputs = ReviewInputs.from_lists(preds, labels)
    whole, pieces = review(inputs, 3), review(inputs, 3, chunk=7)
    for name in ('missing', 'spurious', 'wrong_class', 'badly_located'):
        value = getattr(whole, name)
        assert torch.equal(value, getattr(pieces, name)), name
        assert bool(torch.isfinite(value).all()) and value.min() >= 0 and value.max() <= 1, name
    images = whole.image_scores()
    assert images['missing'][0] == 0 and images['spurious'][1] == 0 and images['combined'][1] >= 0
    assert review(ReviewInputs.from_lists([], []), 3).image_scores()['combined'].shape == (0, )


def test_box_iou():
    a = torch.tensor([[0., 0, 10, 10], [0, 0, 0, 0]])
    b = torch.tensor([[5., 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    assert box_iou(a, b).tolist() == [[pytest.approx(1 / 3), 1.0, 0.0], [0.0, 0.0, 0.0]]
