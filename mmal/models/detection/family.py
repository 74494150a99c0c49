"""The detector-family interface and what the families share (classifier taps, sparse MC convs).

A family knows how one kind of mmdet detector is run, post-processed and sampled:

- :meth:`DetectorFamily.run` does one forward on a batch and returns the detections exactly as
  the detector's own ``predict`` would (same thresholds, NMS and order), each carrying
  ``sources``: the index of the candidate it came from (a prior of a dense head, a proposal of
  a two-stage detector, a query of a DETR), plus whatever later steps need;
- :meth:`log_probs`, :meth:`mc_log_probs` and :meth:`last_layer_input` read a set of
  ``(image, source)`` rows from that pass;
- :meth:`candidate_boxes` lists the boxes of every candidate of one image, for aligning a
  flipped pass by box overlap.

Families are registered in ``mmal.registry.DETECTOR_FAMILIES``; :class:`DetectionAdapter` uses the
first (lowest ``priority``) whose :meth:`matches` accepts the model. A family matches by behaviour,
not by class: it claims a detector only when the methods the detector's ``predict`` calls are the
implementations the family reproduces (:func:`implements`); a subclass that overrides one of them
predicts differently and is not claimed. :meth:`DetectorFamily.check` then refuses, before any
training, an output the family cannot compute for that detector (a Monte-Carlo dropout site, ...).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, FrozenSet, Generic, Iterator, List, Optional, Sequence, TypeGuard, TypeVar

import torch
import torch.nn.functional as nnf
from mmdet.models.detectors import BaseDetector
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...outputs import PROPOSAL_IOU


@dataclass
class FamilyPass:
    """What every family's forward keeps (each family's pass adds the head outputs it reads).

    Attributes:
        detections: Per image, the detections exactly as ``predict(..., rescale=False)`` with their
            ``sources``; None for a pass that only serves flip alignment.
    """

    detections: Optional[List[InstanceData]]


PassT = TypeVar('PassT', bound=FamilyPass)


class DetectorFamily(Generic[PassT]):
    """Base class of a detector family (see the module docstring); ``PassT`` is its forward's record.

    Args:
        model: The detector.
        test_cfg: Overrides of the post-processing settings (``score_thr``, ``nms_pre``,
            ``max_per_img``, ``nms_iou``); None values keep the model's ``test_cfg``.
    """

    #: Lower is tried first (a specialised family before the general one it refines).
    priority: ClassVar[int] = 50
    #: ``'mirror'``: flipped predictions align by mirroring the prior grid (SSD, as the published
    #: AL-SSL code); ``'match'``: by the IoU of flipped-back boxes.
    flip_alignment: ClassVar[str] = 'match'
    #: Whether a candidate has one box per class (two-stage regression) rather than one box.
    class_specific_boxes: ClassVar[bool] = False
    #: Human-readable list of the detectors it covers (for error messages and the README).
    covers: ClassVar[str] = ''
    #: Whether each candidate is a proposal that the detector refines (:meth:`proposal_boxes`).
    has_proposals: ClassVar[bool] = False
    #: Outputs (keys of :mod:`mmal.outputs`) that no detector of the family can give, each with why;
    #: :meth:`check` refuses them before training (and a detector's own head may lack more).
    refuses: ClassVar[Dict[str, str]] = {}
    #: How the family scores and aligns flipped predictions, for the support matrix.
    summary: ClassVar[str] = ''

    @classmethod
    def refusal(cls, requires: FrozenSet[str]) -> Optional[str]:
        """Why every detector of the family refuses a method that reads ``requires``, or None (its
        detectors give them, unless one's head lacks something :meth:`check` finds)."""
        if PROPOSAL_IOU in requires and not cls.has_proposals:
            return 'only two-stage detectors have proposals to compare boxes with'
        for key in sorted(requires & set(cls.refuses)):
            return cls.refuses[key]
        return None

    def __init__(self, model: BaseDetector, test_cfg: Optional[Dict[str, Any]] = None) -> None:
        self.model = model
        self.overrides = {k: v for k, v in (test_cfg or {}).items() if v is not None}

    @classmethod
    def matches(cls, model: BaseDetector) -> bool:
        """Whether this family reproduces ``model``'s ``predict`` (see :func:`implements`)."""
        raise NotImplementedError

    def check(self, requires: FrozenSet[str]) -> None:
        """Raise a TypeError naming the reason when an output of ``requires`` (keys of
        :mod:`mmal.outputs`) cannot be computed for this detector; called before any training.
        Subclasses extend it (calling this one)."""
        if PROPOSAL_IOU in requires and not self.has_proposals:
            raise TypeError(f'localization tightness compares each box with the proposal it was refined from, and '
                            f'{type(self.model).__name__} ({type(self).__name__}) has no proposals (only two-stage '
                            'detectors do); use LocalizationStability.')
        for key in sorted(requires & set(self.refuses)):
            raise TypeError(f'{type(self.model).__name__} ({type(self).__name__}): {self.refuses[key]}.')

    def post_cfg(self, base: Optional[dict]) -> ConfigDict:
        """A copy of the model's post-processing config with the adapter's overrides applied."""
        cfg = ConfigDict(dict(base or {}))
        for key, value in self.overrides.items():
            if key == 'nms_iou':
                cfg.nms = ConfigDict({**dict(cfg.get('nms') or dict(type='nms')), 'iou_threshold': value})
            else:
                cfg[key] = value
        return cfg

    # -- one forward ------------------------------------------------------------------------------
    def run(self, feats: Sequence[Tensor], samples: Sequence[Any], detect: bool = True) -> PassT:
        """Forward the head(s) on ``feats``; the pass holds ``detections``: one ``InstanceData``
        per image (``bboxes``, ``scores``, ``labels``, ``sources``), as ``predict`` returns them
        with ``rescale=False``, or None without ``detect`` (a pass read only through
        :meth:`log_probs` and :meth:`candidate_boxes`, for flip alignment)."""
        raise NotImplementedError

    def num_candidates(self, p: PassT, image: int) -> int:
        """How many candidates image ``image`` has in pass ``p``."""
        raise NotImplementedError

    # -- reading rows of a pass -------------------------------------------------------------------
    def log_probs(self, p: PassT, image: Tensor, source: Tensor) -> Tensor:
        """``[M, K]`` log-probabilities of the rows ``(image, source)``."""
        raise NotImplementedError

    def mc_log_probs(self, p: PassT, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        """``[T, M, K]`` log-probabilities under dropout before the classification layer(s)."""
        raise NotImplementedError

    def last_layer_input(self, p: PassT, image: Tensor, source: Tensor) -> Tensor:
        """``[M, D]`` input of the classification layer at each row."""
        raise NotImplementedError

    def candidate_boxes(self, p: PassT, image: int, label: Optional[int] = None) -> Tensor:
        """``[A, 4]`` boxes (input pixels) of every candidate of ``image``; ``label`` picks the box of
        that class where regression is class-specific (``flip_alignment='match'``)."""
        raise NotImplementedError

    def proposal_boxes(self, p: PassT, image: Tensor, source: Tensor) -> Tensor:
        """``[M, 4]`` the proposal (input pixels) each row's candidate is (``has_proposals`` families)."""
        raise NotImplementedError(f'{type(self).__name__} has no proposals.')

    def mirrored_log_probs(self, p: PassT, flipped_feats: Sequence[Tensor], image: Tensor, source: Tensor) -> Tensor:
        """``[M, K]`` log-probabilities at the rows' mirrored locations in the flipped batch's features
        (``flip_alignment='mirror'``)."""
        raise NotImplementedError(f'{type(self).__name__} aligns a flipped pass by box overlap '
                                  f'(flip_alignment={self.flip_alignment!r}), not by mirroring its candidates.')


#: The methods of a dense head that its ``predict`` runs.
DENSE_PREDICT = ('predict', 'predict_by_feat', '_predict_by_feat_single', '_bbox_post_process')


def implements(obj: Any, method: str, *references: type) -> bool:
    """Whether ``obj``'s ``method`` is the implementation of one of ``references`` (and ``obj`` is an
    instance of the first): what a family reproduces is then what ``obj`` runs.

    Args:
        obj: A detector or one of its heads.
        method: A method name.
        *references: Classes whose implementation of ``method`` the family reproduces.

    Returns:
        False for an instance of another class, or of a subclass that overrides ``method``.
    """
    if not isinstance(obj, references[0]):
        return False
    own = getattr(type(obj), method, None)
    return own is not None and any(own is getattr(reference, method, None) for reference in references)


def implements_all(obj: Any, reference: type, methods: Sequence[str]) -> bool:
    """:func:`implements` for each of ``methods`` with the single ``reference``."""
    return all(implements(obj, method, reference) for method in methods)


@contextlib.contextmanager
def capture_inputs(modules: Sequence[nn.Module]) -> Iterator[List[Tensor]]:
    """Record the first positional input of each call of ``modules`` (in call order) while the
    block runs. Used to read what a head's classification layer saw, without re-running it."""
    calls: List[Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: calls.append(args[0]))
               for m in {id(m): m for m in modules}.values()]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def first_occurrence(image: Tensor, source: Tensor, num_sources: int) -> Tensor:
    """Positions of the first occurrence of each distinct ``(image, source)`` pair, in order."""
    key = image * num_sources + source
    if key.numel() == 0:
        return key
    unique, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((unique.numel(), ), key.numel(), dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, inverse, torch.arange(key.numel(), device=key.device), reduce='amin')
    return first.sort().values


def simple_conv(conv: nn.Module) -> TypeGuard[nn.Conv2d]:
    """Whether ``conv`` is a plain odd-kernel, stride-1, same-padded, ungrouped ``nn.Conv2d`` (what
    :func:`sparse_conv_mc` evaluates at single locations)."""
    if type(conv) is not nn.Conv2d:
        return False
    k = conv.kernel_size
    return (k[0] == k[1] and k[0] % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding == (k[0] // 2, k[0] // 2) and conv.padding_mode == 'zeros')


def sparse_conv_mc(conv: nn.Conv2d, fmap: Tensor, batch_index: Tensor, y: Tensor, x: Tensor, samples: int,
                   p: float) -> Tensor:
    """``T`` outputs of ``conv(dropout(fmap))`` at the given locations only.

    An output location depends on the ``k x k`` neighbourhood of its input. Those input elements
    are gathered once (shared between neighbouring locations), dropped out ``T`` times (one mask
    per element and pass, as dropout on the whole map would draw them there), and the conv is
    applied as one matrix product per kernel offset.

    Args:
        conv: A :func:`simple_conv`.
        fmap: ``[B, C_in, H, W]`` input of the conv.
        batch_index, y, x: ``[L]`` locations (distinct).
        samples: ``T``.
        p: Dropout probability.

    Returns:
        ``[T, L, C_out]``.
    """
    k = conv.kernel_size[0]
    r = k // 2
    height, width = fmap.shape[2:]
    device = fmap.device
    dy, dx = torch.meshgrid(torch.arange(k, device=device), torch.arange(k, device=device), indexing='ij')
    padded_w, padded_h = width + 2 * r, height + 2 * r
    neighbours = ((batch_index[:, None] * padded_h + y[:, None] + dy.flatten()) * padded_w + x[:, None] + dx.flatten())
    elements, slot = torch.unique(neighbours, return_inverse=True)  # [U], [L, k*k]
    values = nnf.pad(fmap, (r, r, r, r)).permute(0, 2, 3, 1).reshape(-1, fmap.shape[1])[elements]
    dropped = nnf.dropout(values.expand(samples, -1, -1), p, True)  # [T, U, C_in]
    out = dropped.new_zeros((samples, len(batch_index), conv.out_channels))
    if conv.bias is not None:
        out += conv.bias
    for offset in range(k * k):
        out += dropped[:, slot[:, offset]] @ conv.weight[:, :, offset // k, offset % k].T
    return out


def flip_within_images(inputs: Tensor, widths: Sequence[int]) -> Tensor:
    """Mirror each image of a padded batch inside its own width (the padding stays on the right),
    so a flipped-back box is ``x -> width - x``."""
    out = inputs.clone()
    for b, w in enumerate(widths):
        out[b, :, :, :w] = inputs[b, :, :, :w].flip(-1)
    return out


def best_overlap(boxes: Tensor, candidates: Tensor, chunk: int = 64) -> Tensor:
    """For each xyxy box, the index of the candidate it overlaps most (IoU).

    The boxes are taken in blocks of neighbours in x (sorted by their left edge), and each block is
    compared only with the candidates whose x-extent meets the block's: the others have IoU 0. With
    thousands of boxes this reads a fraction of the full ``[M, N]`` matrix, block by block in cache.

    Args:
        boxes: ``[M, 4]`` xyxy boxes.
        candidates: ``[N, 4]`` xyxy boxes (N >= 1).
        chunk: Boxes per block.

    Returns:
        ``[M]`` int64 indices into ``candidates``; ties go to the lower index, and a box that
        overlaps no candidate gets 0 (as ``argmax`` over a row of zeros).
    """
    area_c = (candidates[:, 2] - candidates[:, 0]) * (candidates[:, 3] - candidates[:, 1])
    out = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
    order = boxes[:, 0].argsort()
    for start in range(0, len(boxes), chunk):
        rows = order[start:start + chunk]
        b = boxes[rows]
        near = ((candidates[:, 2] > b[:, 0].min()) & (candidates[:, 0] < b[:, 2].max())).nonzero().squeeze(1)
        if len(near) == 0:
            continue
        c = candidates[near]
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        w = (torch.minimum(b[:, None, 2], c[None, :, 2]) - torch.maximum(b[:, None, 0], c[None, :, 0])).clamp_(min=0)
        h = (torch.minimum(b[:, None, 3], c[None, :, 3]) - torch.maximum(b[:, None, 1], c[None, :, 1])).clamp_(min=0)
        inter = w.mul_(h)
        iou = inter / (area_b[:, None] + area_c[near][None, :] - inter).clamp_(min=1e-6)
        best, where = iou.max(1)
        out[rows] = torch.where(best > 0, near[where], torch.zeros_like(where))
    return out


def flip_boxes(boxes: Tensor, width: float) -> Tensor:
    """``[N, 4]`` xyxy boxes mirrored in an image of ``width``."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
