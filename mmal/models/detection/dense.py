"""Single-stage dense detectors: one candidate per prior (anchor or point) of the head.

Each family below post-processes exactly as its head's ``predict_by_feat`` (built from the same
mmdet pieces: ``filter_scores_and_topk``, the box coder, the head's own ``_bbox_post_process``)
and carries the prior index of every kept box through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as nnf
from mmdet.models.dense_heads import (
    FoveaHead,
    GFLHead,
    PAAHead,
    RepPointsHead,
    SSDHead,
    TOODHead,
    YOLOV3Head,
    YOLOXHead,
)
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import BaseDetector, SingleStageDetector
from mmdet.models.layers import multiclass_nms
from mmdet.models.utils import filter_scores_and_topk
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ...outputs import LAST_LAYER_INPUT, MC_PROBS
from ...registry import DETECTOR_FAMILIES
from .distributions import level_logits, score_log_probs, sigmoid_log_probs, softmax_log_probs
from .family import (
    DENSE_PREDICT,
    DetectorFamily,
    FamilyPass,
    capture_inputs,
    implements,
    implements_all,
    simple_conv,
    sparse_conv_mc,
)

#: Names under which mmdet's dense heads keep their last classification conv (one shared by all
#: levels, or one per level).
CLASSIFIER_ATTRS = ('retina_cls', 'conv_cls', 'atss_cls', 'gfl_cls', 'vfnet_cls', 'rtm_cls', 'multi_level_conv_cls',
                    'reppoints_cls_out')


@dataclass
class DensePass(FamilyPass):
    """One forward of a dense head on a batch.

    Attributes:
        maps: The head's raw outputs: per output (class, box, and score-factor maps where the head
            has them), one ``[B, A_l * channels, H_l, W_l]`` map per level.
        taps: Per level, the input of the classification conv ``[B, C_in, H, W]`` (None when the
            head's classification layer was not found).
        shapes: Per level ``(H, W, priors per location)``.
        metas: Per image, its ``metainfo``.
        cache: Priors and decoded boxes, computed once per pass.
    """

    maps: Tuple[List[Tensor], ...]
    taps: Optional[List[Tensor]]
    shapes: List[Tuple[int, int, int]]
    metas: List[Dict[str, Any]]
    cache: Dict[Any, Any] = field(default_factory=dict)


@dataclass
class LevelOutputs:
    """One level's outputs for one image, one row per prior, as ``predict_by_feat`` reads them.

    Attributes:
        level: The level.
        start: The source index (candidate index in the image) of the level's first prior.
        cls: ``[N, C]`` class logits.
        box: ``[N, E]`` box regression outputs.
        factor: ``[N]`` score-factor logits (centerness, IoU, objectness), or None.
        priors: ``[N, 4]`` anchors (or ``[N, 2+]`` points) of the level.
    """

    level: int
    start: int
    cls: Tensor
    box: Tensor
    factor: Optional[Tensor]
    priors: Tensor


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
        levels = head.prior_generator.num_levels
        for name in CLASSIFIER_ATTRS:
            layer = getattr(head, name, None)
            if isinstance(layer, nn.Conv2d):
                return [layer for _ in range(levels)]
            if isinstance(layer, nn.ModuleList) and len(layer) == levels:
                return list(layer)
        return None

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
        """The per-level outputs of one image, flattened as every dense ``_predict_by_feat_single`` does."""
        priors = self.priors(p)
        starts = torch.tensor([0] + [h * w * n for h, w, n in p.shapes]).cumsum(0).tolist()
        factor_maps = p.maps[2] if len(p.maps) > 2 else None

        def rows(m: Tensor, per_prior: int) -> Tensor:
            return m[image].detach().permute(1, 2, 0).reshape(-1, per_prior)

        for level, (cls_map, box_map) in enumerate(zip(p.maps[0], p.maps[1])):
            priors_here = p.shapes[level][2]
            factor = rows(factor_maps[level], 1).squeeze(1) if factor_maps is not None else None
            yield LevelOutputs(level=level, start=starts[level], cls=rows(cls_map, cls_map.shape[1] // priors_here),
                               box=rows(box_map, box_map.shape[1] // priors_here), factor=factor,
                               priors=priors[level])

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        """Every image's detections (:meth:`image_detections`), each with its prior index as ``sources``."""
        return [self.image_detections(p, b, meta) for b, meta in enumerate(p.metas)]

    #: Whether :meth:`level_boxes` decodes each level's boxes itself (else all levels' are decoded
    #: at once with the head's box coder, as ``BaseDenseHead._predict_by_feat_single`` does).
    decodes_per_level: ClassVar[bool] = False

    def level_scores(self, lv: LevelOutputs) -> Tensor:
        """``[N, C]`` the class scores of one level's priors, as the head's post-processing computes them."""
        return lv.cls.sigmoid() if self.use_sigmoid else lv.cls.softmax(-1)[:, :-1]

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        """The kept priors' boxes of one level: their deltas here (decoded later, all levels at once),
        decoded boxes where :attr:`decodes_per_level`."""
        return deltas

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        """``BaseDenseHead._predict_by_feat_single`` of one image, with the prior index carried."""
        head, cfg = self.head, self.cfg
        boxes, scores, labels, factors, sources, kept_priors = [], [], [], [], [], []
        for lv in self.levels(p, image):
            kept_scores, kept_labels, keep, filtered = filter_scores_and_topk(
                self.level_scores(lv), cfg.get('score_thr', 0), cfg.get('nms_pre', -1),
                dict(bbox_pred=lv.box, priors=lv.priors))
            boxes.append(self.level_boxes(lv, filtered['bbox_pred'], filtered['priors'], meta))
            kept_priors.append(filtered['priors'])
            scores.append(kept_scores)
            labels.append(kept_labels)
            sources.append(keep + lv.start)
            if lv.factor is not None:
                factors.append(lv.factor.sigmoid()[keep])
        res = InstanceData()
        res.bboxes = torch.cat(boxes) if self.decodes_per_level else head.bbox_coder.decode(
            cat_boxes(kept_priors), torch.cat(boxes), max_shape=meta['img_shape'])
        res.scores, res.labels, res.sources = torch.cat(scores), torch.cat(labels), torch.cat(sources)
        if factors:
            res.score_factors = torch.cat(factors)
        return head._bbox_post_process(res, cfg, rescale=False, with_nms=True, img_meta=meta)

    def num_candidates(self, p: DensePass, image: int) -> int:
        return sum(h * w * n for h, w, n in p.shapes)

    def gather(self, p: DensePass, maps: Sequence[Tensor], image: Tensor, source: Tensor,
               mirror: bool = False) -> Tensor:
        """The channels of per-level ``maps`` (``[B, A_l*K, H, W]``) at each row, ``[M, K]``; with
        ``mirror`` at the row's location mirrored along the width. Reads only those rows."""
        level, y, x, base = self.locate(p, source)
        channels = maps[0].shape[1] // p.shapes[0][2]
        out = maps[0].new_empty((len(source), channels))
        for lvl, m in enumerate(maps):
            rows = (level == lvl).nonzero().squeeze(1)
            if len(rows):
                col = p.shapes[lvl][1] - 1 - x[rows] if mirror else x[rows]
                found = m[image[rows], :, y[rows], col].view(len(rows), -1, channels)
                out[rows] = found[torch.arange(len(rows), device=found.device), base[rows]]
        return out

    # -- rows --------------------------------------------------------------------------------------------
    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        """Log-probabilities of the rows' logits (see :mod:`.distributions`)."""
        if self.use_sigmoid:
            return sigmoid_log_probs(logits, log_factor)
        return softmax_log_probs(logits)

    def _log_factor(self, p: DensePass, image: Tensor, source: Tensor) -> Optional[Tensor]:
        if len(p.maps) < 3:
            return None
        return nnf.logsigmoid(self.gather(p, p.maps[2], image, source).squeeze(1).float())

    def log_probs(self, p: DensePass, image: Tensor, source: Tensor) -> Tensor:
        return self.distribution(self.gather(p, p.maps[0], image, source), self._log_factor(p, image, source))

    def locate(self, p: DensePass, source: Tensor) -> tuple:
        """``(level, y, x, prior at the location)`` of each source index."""
        sizes = torch.tensor([h * w * n for h, w, n in p.shapes], device=source.device)
        starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        level = torch.bucketize(source, starts, right=True) - 1
        local = source - starts[level]
        widths = torch.tensor([w for _, w, _ in p.shapes], device=source.device)
        per_loc = torch.tensor([n for _, _, n in p.shapes], device=source.device)
        position, base = local // per_loc[level], local % per_loc[level]
        return level, position // widths[level], position % widths[level], base

    def mc_log_probs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        if len(source) == 0:
            return p.maps[0][0].new_zeros((samples, 0, self.num_outcomes()), dtype=torch.float32)
        logits = self.sampled_outputs(p, image, source, samples, dropout)
        log_factor = self._log_factor(p, image, source)
        return self.distribution(logits, None if log_factor is None else log_factor.expand(samples, -1))

    def sampled_outputs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        """``[T, M, channels]`` the classification layer's outputs for each row's prior with dropout
        drawn ``T`` times on its input; the rest of the head runs once."""
        if p.taps is None or self.classifiers is None:  # the head's classification layer was not found
            raise TypeError(f'{type(self.head).__name__}: its classification layer is not one of {CLASSIFIER_ATTRS}, '
                            'so Monte-Carlo dropout cannot be drawn; use a scorer without MC samples (Entropy, '
                            'Margin, Consistency) or a feature selection (KCenterGreedy).')
        channels = cast(nn.Conv2d, self.classifiers[0]).out_channels // p.shapes[0][2]
        logits = p.maps[0][0].new_zeros((samples, len(source), channels), dtype=torch.float32)
        level, y, x, base = self.locate(p, source)
        for lvl, (tap, layer) in enumerate(zip(p.taps, self.classifiers)):
            rows = (level == lvl).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            width = p.shapes[lvl][1]
            loc_key = (image[rows] * p.shapes[lvl][0] + y[rows]) * width + x[rows]
            locations, loc_of_row = torch.unique(loc_key, return_inverse=True)
            b = locations // (p.shapes[lvl][0] * width)
            ly, lx = (locations // width) % p.shapes[lvl][0], locations % width
            if simple_conv(layer):
                out = sparse_conv_mc(layer, tap, b, ly, lx, samples, dropout)
            else:  # the whole layer on dropped-out inputs, read at the locations
                out = torch.stack([layer(nnf.dropout(tap, dropout, True))[b, :, ly, lx] for _ in range(samples)])
            out = out.view(samples, len(locations), -1, channels)
            logits[:, rows] = out[:, loc_of_row, base[rows]].float()
        return logits

    def num_outcomes(self) -> int:
        return self.head.num_classes + 1  # the classes and background

    def last_layer_input(self, p: DensePass, image: Tensor, source: Tensor) -> Tensor:
        """The classification conv's input at each row's location (its centre tap). Levels with their
        own classification conv (SSD) are different layers: each row fills its level's block of a
        vector spanning all of them, so gradients of different layers never mix."""
        if p.taps is None or self.classifiers is None:
            raise TypeError(f'{type(self.head).__name__}: its classification layer is not one of {CLASSIFIER_ATTRS}; '
                            'BADGE needs its input.')
        level, y, x, _ = self.locate(p, source)
        shared = all(layer is self.classifiers[0] for layer in self.classifiers)
        widths = [tap.shape[1] for tap in p.taps]
        offsets = [0] * len(widths) if shared else torch.tensor([0] + widths).cumsum(0).tolist()
        out = p.taps[0].new_zeros((len(source), widths[0] if shared else sum(widths)))
        for lvl, tap in enumerate(p.taps):
            rows = (level == lvl).nonzero().squeeze(1)
            out[rows, offsets[lvl]:offsets[lvl] + widths[lvl]] = tap[image[rows], :, y[rows], x[rows]]
        return out

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


@DETECTOR_FAMILIES.register_module()
class SSDFamily(DenseHeadFamily):
    """SSD (softmax over classes and background). Flipped predictions align by mirroring the
    anchor grid, as the published AL-SSL and CSD code does."""
    priority = 10
    flip_alignment = 'mirror'
    covers = 'SSD'
    summary = 'softmax; flip aligned by mirroring the anchor grid'
    reference = SSDHead

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        return [branch[-1] if isinstance(branch, nn.Sequential) else branch for branch in head.cls_convs]

    def mirrored_log_probs(self, p: DensePass, flipped_feats: Sequence[Tensor], image: Tensor,
                           source: Tensor) -> Tensor:
        """Log-probabilities at the same rows from the features of the flipped batch, read at the
        mirrored location of each row (its class maps mirrored back along the width)."""
        maps = self.head(flipped_feats)[0]
        return self.distribution(self.gather(p, maps, image, source, mirror=True), None)


@DETECTOR_FAMILIES.register_module()
class GFLFamily(DenseHeadFamily):
    """GFL: quality-focal class scores, boxes from the integral of a distribution per side."""
    priority = 20
    covers = 'GFL'
    summary = 'quality sigmoid, integral boxes; flip by box IoU'
    reference = GFLHead

    def distances(self, lv: LevelOutputs) -> Tensor:
        """``GFLHead._predict_by_feat_single``'s integral box distances of one level and image."""
        return self.head.integral(lv.box) * self.head.prior_generator.strides[lv.level][0]

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        head, cfg = self.head, self.cfg
        boxes, scores, labels, sources = [], [], [], []
        for lv in self.levels(p, image):
            kept_scores, kept_labels, keep, filtered = filter_scores_and_topk(
                lv.cls.sigmoid(), cfg.score_thr, cfg.get('nms_pre', -1),
                dict(bbox_pred=self.distances(lv), priors=lv.priors))
            boxes.append(head.bbox_coder.decode(head.anchor_center(filtered['priors']), filtered['bbox_pred'],
                                                max_shape=meta['img_shape']))
            scores.append(kept_scores)
            labels.append(kept_labels)
            sources.append(keep + lv.start)
        res = InstanceData(bboxes=torch.cat(boxes), scores=torch.cat(scores), labels=torch.cat(labels),
                           sources=torch.cat(sources))
        return head._bbox_post_process(res, cfg, rescale=False, with_nms=True, img_meta=meta)

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        key = ('boxes', image)
        if key not in p.cache:
            boxes = [self.head.bbox_coder.decode(self.head.anchor_center(lv.priors), self.distances(lv),
                                                 max_shape=p.metas[image]['img_shape'])
                     for lv in self.levels(p, image)]
            p.cache[key] = torch.cat(boxes)
        return p.cache[key]


@DETECTOR_FAMILIES.register_module()
class YOLOXFamily(DenseHeadFamily):
    """YOLOX: score = max class sigmoid x objectness sigmoid, one label per point."""
    priority = 20
    covers = 'YOLOX'
    summary = 'sigmoid x objectness; flip by box IoU'
    reference = YOLOXHead

    def priors(self, p: DensePass) -> List[Tensor]:
        if 'priors' not in p.cache:
            cls_maps = p.maps[0]
            p.cache['priors'] = self.head.prior_generator.grid_priors(
                [m.shape[2:] for m in cls_maps], dtype=cls_maps[0].dtype, device=cls_maps[0].device, with_stride=True)
        return p.cache['priors']

    def all_boxes(self, p: DensePass) -> Tensor:
        """``YOLOXHead.predict_by_feat``'s decoded boxes of every point, ``[B, A, 4]``."""
        if 'all_boxes' not in p.cache:
            p.cache['all_boxes'] = self.head._bbox_decode(torch.cat(self.priors(p)), level_logits(p.maps[1], 4))
        return p.cache['all_boxes']

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        boxes, scores = self.all_boxes(p), level_logits(p.maps[0], self.head.cls_out_channels).sigmoid()
        objectness = level_logits(p.maps[2], 1).squeeze(-1).sigmoid()
        results = []
        for b, meta in enumerate(p.metas):
            max_scores, labels = torch.max(scores[b], 1)
            valid = objectness[b] * max_scores >= self.cfg.score_thr
            res = InstanceData(bboxes=boxes[b][valid], scores=max_scores[valid] * objectness[b][valid],
                               labels=labels[valid], sources=valid.nonzero().squeeze(1))
            results.append(self.head._bbox_post_process(res, self.cfg, rescale=False, with_nms=True, img_meta=meta))
        return results

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        return self.all_boxes(p)[image]


@DETECTOR_FAMILIES.register_module()
class YOLOV3Family(DenseHeadFamily):
    """YOLOv3: one map per level holds each anchor's box, objectness and class logits; score = class
    sigmoid x objectness sigmoid (the objectness a score factor, as ``YOLOV3Head.predict_by_feat``
    passes it). The maps are split into class, box and objectness views, so the dense rows, flip
    matching and classifier taps apply; Monte-Carlo dropout samples the shared prediction conv
    (``convs_pred``), hence class logits and objectness together."""
    priority = 20
    covers = 'YOLOv3'
    summary = 'sigmoid x objectness (one map per level); MC dropout in the prediction conv; flip by box IoU'
    reference = YOLOV3Head

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        convs = getattr(head, 'convs_pred', None)
        return list(convs) if isinstance(convs, nn.ModuleList) and all(type(c) is nn.Conv2d for c in convs) else None

    def run(self, feats: Sequence[Tensor], samples: Sequence, detect: bool = True) -> DensePass:
        head = self.head
        with capture_inputs(self.classifiers or []) as calls:
            pred_maps = head(feats)[0]
        priors = head.num_base_priors
        views = [m.view(m.shape[0], priors, head.num_attrib, *m.shape[2:]) for m in pred_maps]

        def split(lo: int, hi: int) -> List[Tensor]:
            return [v[:, :, lo:hi].reshape(v.shape[0], -1, *v.shape[3:]) for v in views]

        shapes = [(m.shape[2], m.shape[3], priors) for m in pred_maps]
        p = DensePass(detections=None, maps=(split(5, head.num_attrib), split(0, 4), split(4, 5)),
                      taps=list(calls) if len(calls) == len(pred_maps) else None, shapes=shapes,
                      metas=[s.metainfo for s in samples], cache=dict(raw=list(pred_maps)))
        if detect:
            p.detections = self.postprocess(p)
        return p

    def all_boxes(self, p: DensePass) -> Tensor:
        """``YOLOV3Head.predict_by_feat``'s decoded boxes of every anchor, ``[B, A, 4]``."""
        if 'all_boxes' not in p.cache:
            head, raw = self.head, p.cache['raw']
            flat = torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, head.num_attrib) for m in raw], dim=1)
            deltas = torch.cat([flat[..., :2].sigmoid(), flat[..., 2:4]], dim=-1)
            strides = torch.cat([flat.new_tensor(stride).expand(h * w * n)
                                 for stride, (h, w, n) in zip(head.featmap_strides, p.shapes)])
            p.cache['flat'] = flat
            p.cache['all_boxes'] = head.bbox_coder.decode(torch.cat(self.priors(p)), deltas, strides.unsqueeze(-1))
        return p.cache['all_boxes']

    def postprocess(self, p: DensePass) -> List[InstanceData]:
        head, cfg = self.head, self.cfg
        boxes = self.all_boxes(p)
        flat = p.cache['flat']
        objectness, scores = flat[..., 4].sigmoid(), flat[..., 5:].sigmoid()
        results = []
        for b, meta in enumerate(p.metas):
            index = torch.arange(boxes.shape[1], device=boxes.device)
            image_boxes, image_scores, image_objectness = boxes[b], scores[b], objectness[b]
            conf_thr = cfg.get('conf_thr', -1)
            if conf_thr > 0:
                confident = image_objectness >= conf_thr
                image_boxes, image_scores = image_boxes[confident], image_scores[confident]
                image_objectness, index = image_objectness[confident], index[confident]
            kept_scores, labels, keep, _ = filter_scores_and_topk(image_scores, cfg.get('score_thr', 0),
                                                                  cfg.get('nms_pre', -1))
            res = InstanceData(scores=kept_scores, labels=labels, bboxes=image_boxes[keep],
                               score_factors=image_objectness[keep], sources=index[keep])
            results.append(head._bbox_post_process(results=res, cfg=cfg, rescale=False, with_nms=True, img_meta=meta))
        return results

    def mc_log_probs(self, p: DensePass, image: Tensor, source: Tensor, samples: int, dropout: float) -> Tensor:
        if len(source) == 0:
            return super().mc_log_probs(p, image, source, samples, dropout)
        out = self.sampled_outputs(p, image, source, samples, dropout)  # [T, M, 5 + C]: box, objectness, classes
        return self.distribution(out[..., 5:], nnf.logsigmoid(out[..., 4]))

    def candidate_boxes(self, p: DensePass, image: int, label: Optional[int] = None) -> Tensor:
        return self.all_boxes(p)[image]


@DETECTOR_FAMILIES.register_module()
class TOODFamily(DenseHeadFamily):
    """TOOD: the head's forward already returns task-aligned class scores ``sqrt(σ(l) · σ(p))`` and
    boxes in stride units; its ``_predict_by_feat_single`` scales and filters them. The class
    distribution splits the best score over the classes as for sigmoid heads. Its classification
    has two branches (logits and the alignment probability), so no single layer is sampled: BALD,
    BADGE and CategoryMatching are refused."""
    priority = 20
    covers = 'TOOD'
    refuses = {MC_PROBS: 'its classification has two branches, so no single layer is sampled (BALD); use Entropy, '
                         'Margin or Consistency',
               LAST_LAYER_INPUT: "its classification has two branches, so no single layer's input is read (BADGE, "
                                 'CategoryMatching); use Entropy, Margin or Consistency, or KCenterGreedy'}
    summary = "task-aligned scores split as a sigmoid head's; no single classification layer; flip by box IoU"
    reference = TOODHead

    decodes_per_level = True

    def classifier_layers(self, head: BaseDenseHead) -> Optional[List[nn.Module]]:
        return None

    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        return score_log_probs(logits.float().clamp_min(torch.finfo(torch.float32).tiny).log(), log_factor)

    def level_scores(self, lv: LevelOutputs) -> Tensor:
        return lv.cls  # already scores

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        return deltas * self.head.prior_generator.strides[lv.level][0]


class OwnDecodeFamily(DenseHeadFamily):
    """Base of heads that decode each level's boxes with their own ``_bbox_decode(priors, deltas,
    scale, img_shape)``, the level's ``scale`` read from the head attribute :attr:`level_scale`."""
    priority = 20
    decodes_per_level = True
    #: The head attribute holding each level's decoding scale.
    level_scale: ClassVar[str] = ''

    def level_boxes(self, lv: LevelOutputs, deltas: Tensor, priors: Tensor, meta: Dict[str, Any]) -> Tensor:
        return self.head._bbox_decode(priors, deltas, getattr(self.head, self.level_scale)[lv.level],
                                      meta['img_shape'])


@DETECTOR_FAMILIES.register_module()
class FoveaFamily(OwnDecodeFamily):
    """FoveaBox: sigmoid classes; each level's boxes decoded with its base edge length."""
    covers = 'FoveaBox'
    summary = 'sigmoid; boxes decoded per level with the base edge length; flip by box IoU'
    reference = FoveaHead
    level_scale = 'base_edge_list'


@DETECTOR_FAMILIES.register_module()
class RepPointsFamily(OwnDecodeFamily):
    """RepPoints: the head's forward turns each point's refined point set into a box (in stride
    units), which ``_bbox_decode`` places at the point and clips."""
    covers = 'RepPoints'
    summary = 'sigmoid; point sets as boxes, decoded per level; flip by box IoU'
    reference = RepPointsHead
    level_scale = 'point_strides'


@DETECTOR_FAMILIES.register_module()
class PAAFamily(DenseHeadFamily):
    """PAA: score = sqrt(class sigmoid x IoU sigmoid), class-wise NMS with score voting."""
    priority = 20
    covers = 'PAA'
    summary = 'sqrt(sigmoid x IoU), score voting; flip by box IoU'
    reference = PAAHead

    def distribution(self, logits: Tensor, log_factor: Optional[Tensor]) -> Tensor:
        return sigmoid_log_probs(logits, log_factor, power=0.5)

    def image_detections(self, p: DensePass, image: int, meta: Dict[str, Any]) -> InstanceData:
        head, cfg = self.head, self.cfg
        nms_pre = cfg.get('nms_pre', -1)
        boxes, scores, factors, sources = [], [], [], []
        for lv in self.levels(p, image):
            level_scores, deltas, level_priors = lv.cls.sigmoid(), lv.box, lv.priors
            assert lv.factor is not None  # PAA's IoU branch
            factor = lv.factor.sigmoid()
            index = torch.arange(len(factor), device=factor.device)
            if 0 < nms_pre < level_scores.shape[0]:
                top = (level_scores * factor[:, None]).sqrt().max(dim=1)[0].topk(nms_pre)[1]
                level_priors, deltas, level_scores, factor, index = (
                    level_priors[top], deltas[top], level_scores[top], factor[top], index[top])
            boxes.append(head.bbox_coder.decode(level_priors, deltas, max_shape=meta['img_shape']))
            scores.append(level_scores)
            factors.append(factor)
            sources.append(index + lv.start)
        all_boxes, all_scores = torch.cat(boxes), torch.cat(scores)
        all_factors, all_sources = torch.cat(factors), torch.cat(sources)
        nms_scores = (torch.cat([all_scores, all_scores.new_zeros(len(all_scores), 1)], dim=1)
                      * all_factors[:, None]).sqrt()
        dets, labels, inds = multiclass_nms(all_boxes, nms_scores, cfg.score_thr, cfg.nms, cfg.max_per_img,
                                            score_factors=None, return_inds=True)
        kept = all_sources[inds // head.cls_out_channels]
        if head.with_score_voting and len(dets) > 0:
            # score voting lists the detections class by class, each class in NMS order
            order = torch.cat([(labels == c).nonzero().squeeze(1) for c in range(head.cls_out_channels)])
            dets, labels = head.score_voting(dets, labels, all_boxes, nms_scores, cfg.score_thr)
            kept = kept[order]
        return InstanceData(bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels, sources=kept)
