"""``DetectionAdapter``: any supported mmdet detector and a batch -> the outputs a scorer requires."""
from __future__ import annotations

import zlib
from typing import Any, Collection, Dict, FrozenSet, List, Optional, Sequence

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from ...checkpoint import CLASS_QUALITY_ATTR
from ...errors import UserError
from ...outputs import (
    AUG_PROBS,
    BOX_STABILITY,
    BOXES,
    CLASS_QUALITY,
    FEATURES,
    FLIP_LOG_PROBS,
    LABELS,
    LAST_LAYER_INPUT,
    LOG_PROBS,
    MC_PROBS,
    PRED_LOSS,
    PROBS,
    PROPOSAL_IOU,
    SCORES,
    ModelOutputs,
)
from ...registry import ADAPTERS, DETECTOR_FAMILIES
from ..base_adapter import BaseAdapter
from .family import DetectorFamily, best_overlap, first_occurrence, flip_boxes, flip_within_images

BOX_MODES = ('detections', 'anchors')
#: Outputs read from the kept detections themselves (one row per kept box, so not in 'anchors' mode).
DETECTION_OUTPUTS = frozenset({BOXES, LABELS, SCORES, BOX_STABILITY, PROPOSAL_IOU})
BOX_OUTPUTS = frozenset({PROBS, LOG_PROBS, FLIP_LOG_PROBS, MC_PROBS, LAST_LAYER_INPUT}) | DETECTION_OUTPUTS
#: Kao et al.'s noise levels: standard deviations of the Gaussian pixel noise (pixel values 0-255).
NOISE_LEVELS = (8.0, 16.0, 24.0, 32.0, 40.0, 48.0)


def find_family(model: BaseDetector, name: Optional[str] = None) -> type:
    """The detector family of ``model``: ``name`` if given, else the first registered family (lowest
    ``priority``) that accepts it.

    Raises:
        TypeError: No family accepts the model (the message lists the supported detectors).
    """
    if name is not None:
        family = DETECTOR_FAMILIES.get(name)
        if family is None:
            raise ValueError(f'unknown detector family {name!r}; registered: {sorted(DETECTOR_FAMILIES.module_dict)}.')
        if not family.matches(model):
            raise TypeError(f'the detector family {name} does not accept {type(model).__name__}.')
        return family
    families = sorted(DETECTOR_FAMILIES.module_dict.values(), key=lambda f: (f.priority, f.__name__))
    for family in families:
        if family.matches(model):
            return family
    head = getattr(model, 'bbox_head', None) or getattr(model, 'roi_head', None)
    supported = '; '.join(f.covers for f in families)
    raise TypeError(f'{type(model).__name__} (head {type(head).__name__}) is not a supported detector: mmal '
                    f'scores {supported}; add a family to mmal.registry.DETECTOR_FAMILIES for another one.')


@ADAPTERS.register_module()
class DetectionAdapter(BaseAdapter):
    """Outputs of an mmdet detector for scorers and selectors, one row per kept box.

    The backbone and neck run once per batch. The detector's family (``mmal.registry.
    DETECTOR_FAMILIES``: SSD, dense heads, GFL, YOLOX, YOLOv3, TOOD, FoveaBox, RepPoints, PAA,
    two-stage, DETR-type) runs its heads and post-processes them exactly as the detector's
    ``predict`` does (``box_mode='detections'``, with the head's ``test_cfg`` unless overridden
    here); each kept box is scored on the full class distribution of the candidate it came from
    (prior, proposal or query; see :mod:`mmal.models.detection.distributions`), and a candidate
    kept under two labels is one row.
    ``box_mode='anchors'`` scores every candidate instead.

    Consistency (``flip_log_probs``) runs the flipped batch: SSD aligns it by mirroring its anchor
    grid, every other family by box overlap: each kept box is paired with the flipped-pass
    candidate whose box, flipped back, overlaps it most (of the box's class where regression is
    class-specific). Monte-Carlo samples (``mc_probs``) redraw dropout before the classification
    layer, evaluated at the kept boxes only. ``features`` are the mean of one ``extract_feat``
    level; ``last_layer_input`` is the classification layer's input at each kept box (BADGE).
    ``boxes``, ``labels`` and ``scores`` are each row's kept detection (its best-scoring label);
    ``box_stability`` runs the family once per ``noise_levels`` entry on the batch plus Gaussian pixel
    noise (each image's own noise, seeded by its path, so a run is reproducible however it is
    batched or sharded) and averages each kept box's IoU with its best match there;
    ``proposal_iou`` is the IoU of a two-stage detector's proposal with the box refined from it;
    ``class_quality`` is what :class:`~mmal.engine.ClassQualityHook` recorded while training.

    Args:
        model: The detector.
        requires: Output keys to compute (:mod:`mmal.outputs`).
        box_mode: ``'detections'`` (default) or ``'anchors'`` (every candidate).
        score_thr: Detection score threshold; None: the model's ``test_cfg``.
        nms_iou: IoU threshold of the NMS; None: the model's.
        nms_pre: Candidates per level entering NMS (dense heads); None: the model's.
        max_per_img: Boxes kept per image; None: the model's.
        mc_samples: Monte-Carlo dropout passes ``T``.
        dropout_p: Dropout probability of those passes.
        feature_level: Which ``extract_feat`` level is averaged into the image feature.
        family: Name of the detector family to use; None picks it from the model.
        noise_levels: Standard deviations (pixel values 0-255) of the noise of ``box_stability``.
        noise_seed: Seed of that noise.
    """

    provides = frozenset({PROBS, LOG_PROBS, FLIP_LOG_PROBS, MC_PROBS, LAST_LAYER_INPUT, FEATURES, PRED_LOSS,
                          CLASS_QUALITY}) | DETECTION_OUTPUTS
    hints = {AUG_PROBS: 'for detection use the Consistency scorer (symmetric KL under a horizontal flip, '
                        'CSD\'s inconsistency).',
             PRED_LOSS: 'use an LLAL detector (type=\'LLALSingleStageDetector\') for the LossPrediction scorer.'}

    def __init__(self,
                 model: BaseDetector,
                 requires: Collection[str],
                 box_mode: str = 'detections',
                 score_thr: Optional[float] = None,
                 nms_iou: Optional[float] = None,
                 nms_pre: Optional[int] = None,
                 max_per_img: Optional[int] = None,
                 mc_samples: int = 10,
                 dropout_p: float = 0.1,
                 feature_level: int = -1,
                 family: Optional[str] = None,
                 noise_levels: Sequence[float] = NOISE_LEVELS,
                 noise_seed: int = 0) -> None:
        if box_mode not in BOX_MODES:
            raise ValueError(f'box_mode must be one of {BOX_MODES}, got {box_mode!r}.')
        if box_mode == 'anchors' and frozenset(requires) & DETECTION_OUTPUTS:
            asked = sorted(frozenset(requires) & DETECTION_OUTPUTS)
            raise ValueError(f"box_mode='anchors' scores every candidate, and {asked} describe kept detections; use "
                             "box_mode='detections'.")
        if not noise_levels or any(not isinstance(v, (int, float)) or v <= 0 for v in noise_levels):
            raise ValueError(f'noise_levels must be positive standard deviations, got {noise_levels!r}.')
        if not hasattr(model, 'extract_feat'):
            raise TypeError(f'{type(model).__name__} is not an mmdet detector (no extract_feat).')
        super().__init__(model, requires)
        self.model: BaseDetector = model
        self._family: Optional[DetectorFamily[Any]] = None
        if self.requires & BOX_OUTPUTS:
            family_cls = find_family(model, family)
            self._family = family_cls(model, dict(score_thr=score_thr, nms_iou=nms_iou, nms_pre=nms_pre,
                                                  max_per_img=max_per_img))
            self._family.check(self.requires)
        self.box_mode, self.feature_level = box_mode, feature_level
        self.mc_samples, self.dropout_p = mc_samples, dropout_p
        self.noise_levels, self.noise_seed = tuple(float(v) for v in noise_levels), noise_seed

    @property
    def family(self) -> DetectorFamily[Any]:
        """The detector's family (only an adapter asked for per-box outputs has one)."""
        if self._family is None:
            raise TypeError('this DetectionAdapter computes no per-box outputs, so it has no detector family; build '
                            'it with a box output in `requires`.')
        return self._family

    def provides_for(self, model: BaseDetector) -> FrozenSet[str]:
        if not hasattr(model, 'predict_loss'):
            return self.provides - {PRED_LOSS}
        return self.provides

    # -- one batch ---------------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, data: Dict) -> List[InstanceData]:
        """The detections of one batch (``bboxes`` in input pixels, ``scores``, ``labels``, and
        ``sources``: the candidate each came from), exactly as ``model.predict(..., rescale=False)``."""
        self.model.eval()
        data = self.model.data_preprocessor(data, False)
        return self.family.run(self.model.extract_feat(data['inputs']), data['data_samples']).detections

    @torch.no_grad()
    def __call__(self, data: Dict) -> ModelOutputs:
        """Outputs for one dataloader batch: the required keys plus ``num_images`` and, for
        per-box outputs, ``image_index``."""
        self.model.eval()
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        out: ModelOutputs = {'num_images': inputs.shape[0]}
        if not self.requires:
            return out
        feats = self.model.extract_feat(inputs)
        if FEATURES in self.requires:
            out[FEATURES] = feats[self.feature_level].mean(dim=(2, 3))
        if PRED_LOSS in self.requires:
            out[PRED_LOSS] = self.model.predict_loss(feats)
        if CLASS_QUALITY in self.requires:
            out[CLASS_QUALITY] = self.class_quality()
        if not self.requires & BOX_OUTPUTS:
            return out

        family = self.family
        p = family.run(feats, samples)
        image, source, first = self._rows(p, inputs.shape[0])
        out['image_index'] = image
        if self.requires & DETECTION_OUTPUTS:
            self._detection_outputs(out, p, first, inputs, samples, image, source)
        if self.requires & {PROBS, LOG_PROBS}:
            log_probs = family.log_probs(p, image, source)
            if PROBS in self.requires:
                out[PROBS] = log_probs.exp()
            if LOG_PROBS in self.requires:
                out[LOG_PROBS] = log_probs
        if FLIP_LOG_PROBS in self.requires:
            out[FLIP_LOG_PROBS] = self._flip_log_probs(p, inputs, samples, image, source)
        if MC_PROBS in self.requires:
            out[MC_PROBS] = family.mc_log_probs(p, image, source, self.mc_samples, self.dropout_p).exp()
        if LAST_LAYER_INPUT in self.requires:
            out[LAST_LAYER_INPUT] = family.last_layer_input(p, image, source)
        return out

    def _rows(self, p, batch: int) -> tuple:
        """``(image, source, first)`` of each row: every candidate (``'anchors'``; ``first`` None), or
        each candidate that produced a kept box, once, in detection order, with ``first`` its first
        (best-scoring) detection's position in the batch's concatenated detections."""
        device = p.detections[0].scores.device if p.detections else None
        if self.box_mode == 'anchors':
            counts = [self.family.num_candidates(p, b) for b in range(batch)]
            image = torch.repeat_interleave(torch.arange(batch, device=device), torch.tensor(counts, device=device))
            source = torch.cat([torch.arange(n, device=device) for n in counts])
            return image, source, None
        image = torch.cat([torch.full_like(d.sources, b) for b, d in enumerate(p.detections)])
        source = torch.cat([d.sources for d in p.detections])
        keep = first_occurrence(image, source, max(self.family.num_candidates(p, b) for b in range(batch)))
        return image[keep], source[keep], keep

    def class_quality(self) -> Tensor:
        """``[C]`` the per-class detection quality recorded while the model trained.

        Raises:
            UserError: The model was trained without :class:`~mmal.engine.ClassQualityHook`.
        """
        quality = getattr(self.model, CLASS_QUALITY_ATTR, None)
        if quality is None:
            raise UserError('this model carries no per-class detection quality (PPAL\'s difficulty): train it with '
                            "custom_hooks=[dict(type='ClassQualityHook')] (the AL driver adds it for such a scorer), "
                            'or use another scorer.')
        return quality.detach().clone()

    def _detection_outputs(self, out: ModelOutputs, p, first: Tensor, inputs: Tensor, samples, image: Tensor,
                           source: Tensor) -> None:
        """``boxes``, ``labels``, ``scores``, ``box_stability`` and ``proposal_iou`` of the rows."""
        boxes = torch.cat([d.bboxes for d in p.detections])[first]
        out[BOXES] = boxes
        out[LABELS] = torch.cat([d.labels for d in p.detections])[first]
        out[SCORES] = torch.cat([d.scores for d in p.detections])[first]
        if PROPOSAL_IOU in self.requires:
            proposals = self.family.proposal_boxes(p, image, source)
            out[PROPOSAL_IOU] = bbox_overlaps(proposals, boxes, is_aligned=True)
        if BOX_STABILITY in self.requires:
            out[BOX_STABILITY] = self._box_stability(inputs, samples, image, boxes)

    def _box_stability(self, inputs: Tensor, samples, image: Tensor, boxes: Tensor) -> Tensor:
        """Each row's mean, over the noise levels, of its box's best IoU with the detections of the
        noisy batch (0 where that image has none)."""
        std = getattr(self.model.data_preprocessor, 'std', None)
        std = inputs.new_ones((inputs.shape[1], 1, 1)) if std is None else std.reshape(-1, 1, 1).to(inputs)
        unit = [self._unit_noise(inputs.shape[1], s).to(inputs) / std for s in samples]
        total = boxes.new_zeros(len(boxes))
        for sigma in self.noise_levels:
            noisy = inputs.clone()
            for b, noise in enumerate(unit):
                noisy[b, :, :noise.shape[1], :noise.shape[2]] += sigma * noise
            detections = self.family.run(self.model.extract_feat(noisy), samples).detections
            for b, det in enumerate(detections):
                rows = (image == b).nonzero().squeeze(1)
                if len(rows) and len(det):
                    total[rows] += bbox_overlaps(boxes[rows], det.bboxes).max(1).values
        return total / len(self.noise_levels)

    def _unit_noise(self, channels: int, sample) -> Tensor:
        """Standard Gaussian noise over one image's own area, seeded by its path and ``noise_seed``."""
        height, width = sample.metainfo['img_shape'][:2]
        key = f'{self.noise_seed}:{sample.metainfo.get("img_path", sample.metainfo.get("img_id", ""))}'
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        return torch.randn((channels, height, width), generator=generator)

    def _flip_log_probs(self, p, inputs: Tensor, samples, image: Tensor, source: Tensor) -> Tensor:
        """Log-probabilities of each row's counterpart in the horizontally flipped batch."""
        family = self.family
        if family.flip_alignment == 'mirror':
            return family.mirrored_log_probs(p, self.model.extract_feat(inputs.flip(-1)), image, source)
        widths = [s.metainfo['img_shape'][1] for s in samples]
        flipped = family.run(self.model.extract_feat(flip_within_images(inputs, widths)), samples, detect=False)
        matched = torch.empty_like(source)
        for b, width in enumerate(widths):
            rows = (image == b).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            if family.class_specific_boxes:  # each row against the candidates' boxes of its own class
                labels = self._row_labels(p, b, source[rows])
                groups = [(label, rows[labels == label]) for label in labels.unique().tolist()]
            else:
                groups = [(None, rows)]
            for label, these in groups:
                boxes = family.candidate_boxes(p, b, label)[source[these]]
                candidates = flip_boxes(family.candidate_boxes(flipped, b, label), width)
                matched[these] = best_overlap(boxes, candidates)
        return family.log_probs(flipped, image, matched)

    @staticmethod
    def _row_labels(p, image: int, sources: Tensor) -> Tensor:
        """The label each row's candidate was kept under (its best one), or 0 in ``'anchors'`` mode
        for candidates without a detection."""
        det = p.detections[image]
        if len(det) == 0:
            return torch.zeros_like(sources)
        size = int(max(det.sources.max(), sources.max())) + 1
        first = first_occurrence(torch.zeros_like(det.sources), det.sources, size)  # best label: highest score
        best = torch.zeros(size, dtype=torch.long, device=sources.device)
        best[det.sources[first]] = det.labels[first]
        return best[sources]
