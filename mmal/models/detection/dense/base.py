"""The dense-head family every single-stage detector starts from, and the post-processing pieces
the families share: keep a level's best priors (:func:`keep_top`), then finish as the head does
(:func:`finish`).

:class:`DenseHeadFamily` post-processes exactly as mmdet's ``BaseDenseHead.predict_by_feat``
(built from the same mmdet pieces: ``filter_scores_and_topk``, the box coder, the head's own
``_bbox_post_process``) and carries the prior index of every kept box through it. A family of a
head that differs overrides only what differs, most often one of:

- :meth:`~DenseHeadFamily.level_scores`: a level's class scores from its rows;
- :meth:`~DenseHeadFamily.level_boxes`: a level's boxes (with :attr:`~DenseHeadFamily.decodes_per_level`);
- :meth:`~DenseHeadFamily.distribution`: the class distribution of a row's logits;
- :meth:`~DenseHeadFamily.classifier_layers`: where Monte-Carlo dropout is drawn.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as nnf
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import BaseDetector, SingleStageDetector
from mmdet.models.utils import filter_scores_and_topk
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ....outputs import LAST_LAYER_INPUT, MC_PROBS
from ....registry import DETECTOR_FAMILIES
from ..distributions import level_logits, sigmoid_log_probs, softmax_log_probs
from ..family import DENSE_PREDICT, DetectorFamily, capture_inputs, implements, implements_all
from .rows import (
    CLASSIFIER_ATTRS,
    DensePass,
    LevelOutputs,
    classifier_inputs,
    find_classifiers,
    gather,
    image_levels,
    sampled_outputs,
)


def keep_top(scores: Tensor, lv: LevelOutputs, cfg: Any, **rows: Tensor) -> Tuple[Tensor, Tensor, Tensor, dict]:
    """``filter_scores_and_topk`` of one level, as ``_predict_by_feat_single`` calls it.

    Args:
        scores: ``[N, C]`` the level's class scores.
        lv: The level (its ``start`` turns kept rows into source indices).
        cfg: The post-processing settings (``score_thr``, ``nms_pre``).
        **rows: Per-prior tensors to keep along (``bbox_pred``, ``priors``).

    Returns:
        The kept scores, their labels, their source indices and ``rows`` at the kept priors.
    """
    kept_scores, labels, keep, filtered = filter_scores_and_topk(scores, cfg.get('score_thr', 0),
                                                                 cfg.get('nms_pre', -1), rows)
    return kept_scores, labels, keep + lv.start, filtered


def finish(head: BaseDenseHead, cfg: Any, meta: Dict[str, Any], **fields: Tensor) -> InstanceData:
    """The head's ``_bbox_post_process`` (rescale off, NMS on) of one image's kept boxes; every
    field, ``sources`` included, follows the boxes NMS keeps."""
    return head._bbox_post_process(InstanceData(**fields), cfg, rescale=False, with_nms=True, img_meta=meta)


@DETECTOR_FAMILIES.register_module()
class DenseHeadFamily(DetectorFamily[DensePass]):
    """Dense heads post-processed by mmdet's default ``BaseDenseHead`` path: RetinaNet, FCOS, ATSS,
    VFNet, RTMDet, FSAF, DDOD, AutoAssign, ... (centerness-style score factors included).

    Monte-Carlo samples redraw dropout on the input of the last classification conv and evaluate
    that conv at the kept boxes only; the rest of the head runs once.
    """
    covers = 'RetinaNet, FCOS, ATSS, VFNet, RTMDet and other heads on mmdet\'s default dense post-processing'
    summary = 'sigmoid (x centerness where the head has one); flip aligned by box IoU'
    #: The head class whose post-processing (:data:`DENSE_PREDICT` methods) the family reproduces.
    reference: ClassVar[type] = BaseDenseHead
    #: Whether :meth:`level_boxes` decodes each level's boxes itself (else all levels' are decoded
    #: at once with the head's box coder, as ``BaseDenseHead._predict_by_feat_single`` does).
    decodes_per_level: ClassVar[bool] = False

    def __init__(self, model: BaseDetector, test_cfg: Optional[dict] = None) -> None:
        super().__init__(model, test_cfg)
        self.head: BaseDenseHead = model.bbox_head
        self.cfg = self.post_cfg(self.head.test_cfg)
        self.use_sigmoid = bool(getattr(self.head, 'use_sigmoid_cls', True))  # YOLOv3's sigmoid head has no flag
        self.classifiers = self.classifier_layers(self.head)

    @classmethod
    def matches(cls, model: BaseDetector) -> bool:
        head = getattr(model, 'bbox_head', None)
        return (implements(model, 'predict', SingleStageDetector)
                and implements_all(head, cls.reference, DENSE_PREDICT)
                and not getattr(getattr(head, 'loss_cls', None), 'custom_cls_channels', False))

    def check(self, requires: FrozenSet[str]) -> None:
        super().check(requires)
        if self.classifiers is None and requires & {MC_PROBS, LAST_LAYER_INPUT}:
            raise TypeError(f'{type(self.head).__name__}: its classification layer is not one of {CLASSIFIER_ATTRS}, '
                            'so Monte-Carlo dropout cannot be drawn nor its input read (BALD, BADGE, '
                            'CategoryMatching); use a scorer without MC samples (Entropy, Margin, Consistency) or a '
                            'feature selection (KCenterGreedy).')

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        """The last classification conv of each level, or None when it cannot be found."""
        return find_classifiers(head, head.prior_generator.num_levels)

    # -- the forward and mmdet's post-processing ------------------------------------------------------
    def run(self, feats: Sequence[Tensor], samples: Sequence, detect: bool = True) -> DensePass:
        with capture_inputs(self.classifiers or []) as calls:
            outs = self.head(feats)
        cls_maps = outs[0]
        shapes = [(m.shape[2], m.shape[3], n) for m, n in zip(cls_maps, self.head.prior_generator.num_base_priors)]
        p = DensePass(detections=None, maps=outs, taps=list(calls) if len(calls) == len(cls_maps) else None,
                      shapes=shapes, metas=[s.metainfo for s in samples])
        if detect:
            p.detections = self.postprocess(p)
        return p

    def priors(self, p: DensePass) -> List[Tensor]:
        """The head's priors of each level, as its ``predict_by_feat`` computes them."""
        if 'priors' not in p.cache:
            cls_maps = p.maps[0]
            p.cache['priors'] = self.head.prior_generator.grid_priors(
                [m.shape[-2:] for m in cls_maps], dtype=cls_maps[0].dtype, device=cls_maps[0].device)
        return p.cache['priors']

    def levels(self, p: DensePass, image: int) -> Iterator[LevelOutputs]:
        """The per-level outputs of one image (:func:`.rows.image_levels`)."""
        return image_levels(p, image, self.priors(p))

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        """Every image's detections (:meth:`image_detections`), each with its prior index as ``sources``."""
        return [self.image_detections(p, b, meta) for b, meta in enumerate(p.metas)]

    def level_scores(self, lv: LevelOutputs) -> Tensor:
        """``[N, C]`` the class scores of one level's priors, as the head's post-processing computes them."""
        return lv.cls.sigmoid() if self.use_sigmoid else lv.cls.softmax(-1)[:, :-1]

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        """The kept priors' boxes of one level: their deltas here (decoded later, all levels at once),
        decoded boxes where :attr:`decodes_per_level`."""
        return deltas

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        """``BaseDenseHead._predict_by_feat_single`` of one image, with the prior index carried."""
        boxes, scores, labels, factors, sources, kept_priors = [], [], [], [], [], []
        for lv in self.levels(p, image):
            kept_scores, kept_labels, kept_sources, filtered = keep_top(self.level_scores(lv), lv, self.cfg,
                                                                        bbox_pred=lv.box, priors=lv.priors)
            boxes.append(self.level_boxes(lv, filtered['bbox_pred'], filtered['priors'], meta))
            kept_priors.append(filtered['priors'])
            scores.append(kept_scores)
            labels.append(kept_labels)
            sources.append(kept_sources)
            if lv.factor is not None:
                factors.append(lv.factor.sigmoid()[kept_sources - lv.start])
        bboxes = torch.cat(boxes) if self.decodes_per_level else self.head.bbox_coder.decode(
            cat_boxes(kept_priors), torch.cat(boxes), max_shape=meta['img_shape'])
        extra = dict(score_factors=torch.cat(factors)) if factors else {}
        return finish(self.head, self.cfg, meta, bboxes=bboxes, scores=torch.cat(scores), labels=torch.cat(labels),
                      sources=torch.cat(sources), **extra)

    def num_candidates(self, p: DensePass, image: int) -> int:
        return sum(h * w * n for h, w, n in p.shapes)

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        key = ('boxes', image)
        if key not in p.cache and self.decodes_per_level:
            p.cache[key] = torch.cat([self.level_boxes(lv, lv.box, lv.priors, p.metas[image])
                                      for lv in self.levels(p, image)])
        if key not in p.cache:
            deltas = level_logits([m[image:image + 1] for m in p.maps[1]], self.head.bbox_coder.encode_size)[0]
            p.cache[key] = get_box_tensor(self.head.bbox_coder.decode(
                cat_boxes(self.priors(p)), deltas, max_shape=p.metas[image]['img_shape']))
        return p.cache[key]

    # -- rows --------------------------------------------------------------------------------------------
    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        """Log-probabilities of the rows' logits (see :mod:`..distributions`)."""
        if self.use_sigmoid:
            return sigmoid_log_probs(logits, log_factor)
        return softmax_log_probs(logits)

    def log_factor(self, p: DensePass, image: Tensor, source: Tensor) -> Optional[Tensor]:
        """The log score factor (centerness, IoU, objectness) of each row, or None without one."""
        if len(p.maps) < 3:
            return None
        return nnf.logsigmoid(gather(p, p.maps[2], image, source).squeeze(1).float())

    def log_probs(self, p: DensePass, image: Tensor, source: Tensor) -> Tensor:
        return self.distribution(gather(p, p.maps[0], image, source), self.log_factor(p, image, source))

    def mc_log_probs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        if len(source) == 0:
            return p.maps[0][0].new_zeros((samples, 0, self.num_outcomes()), dtype=torch.float32)
        logits = self.sampled_outputs(p, image, source, samples, dropout)
        log_factor = self.log_factor(p, image, source)
        return self.distribution(logits, None if log_factor is None else log_factor.expand(samples, -1))

    def sampled_outputs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        """``[T, M, channels]`` the classification layer's outputs at the rows, dropout drawn ``T`` times."""
        if p.taps is None or self.classifiers is None:
            raise TypeError(f'{type(self.head).__name__}: its classification layer is not one of {CLASSIFIER_ATTRS}, '
                            'so Monte-Carlo dropout cannot be drawn; use a scorer without MC samples (Entropy, '
                            'Margin, Consistency) or a feature selection (KCenterGreedy).')
        return sampled_outputs(p, p.taps, self.classifiers, image, source, samples, dropout)

    def num_outcomes(self) -> int:
        return self.head.num_classes + 1  # the classes and background

    def last_layer_input(self, p: DensePass, image: Tensor, source: Tensor) -> Tensor:
        if p.taps is None or self.classifiers is None:
            raise TypeError(f'{type(self.head).__name__}: its classification layer is not one of {CLASSIFIER_ATTRS}; '
                            'BADGE needs its input.')
        shared = all(layer is self.classifiers[0] for layer in self.classifiers)
        return classifier_inputs(p, p.taps, shared, image, source)
