"""Turn an mmdet dense detector and a batch into the outputs a scorer requires.

One forward of the backbone and neck per batch; the head runs once, plus ``T`` times on
dropout-perturbed features for Monte-Carlo scorers, plus one pass over the flipped batch for
consistency. Only the outputs named in ``requires`` are computed, and per-anchor tensors do not
outlive the call: only per-box rows of the kept boxes (and per-image rows) leave it.
"""
from __future__ import annotations

from typing import Collection, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as nnf
from mmcv.ops import batched_nms
from mmdet.models.dense_heads import RetinaHead, SSDHead
from torch import Tensor, nn

from ..registry import ADAPTERS
from ..scoring.scorers import AUG_PROBS, FEATURES, FLIP_PROBS, MC_PROBS, OUTPUT_KEYS, PRED_LOSS, PROBS

BOX_MODES = ('detections', 'anchors')


def level_logits(maps: Sequence[Tensor], channels: int) -> Tensor:
    """Concatenate per-level head maps ``[B, A_l*K, H, W]`` into ``[B, A, K]`` in mmdet's prior order."""
    batch = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(batch, -1, channels) for m in maps], dim=1)


def class_distribution(logits: Tensor, use_sigmoid: bool) -> Tensor:
    """Per-anchor distributions ``[..., C+1]`` over the classes and background (last).

    Softmax heads (SSD) predict background themselves. For sigmoid heads (RetinaNet) the classes
    are independent; the distribution is ``[p_1, ..., p_C, Π_c (1 - p_c)]`` renormalised: the class
    probabilities and the probability that no class is present.
    """
    if not use_sigmoid:
        return logits.softmax(-1)
    p = logits.sigmoid()
    background = torch.exp(nnf.logsigmoid(-logits).sum(-1, keepdim=True))
    dist = torch.cat([p, background], dim=-1)
    return dist / dist.sum(-1, keepdim=True)


def classification_maps(head: nn.Module, feats: Sequence[Tensor]) -> List[Tensor]:
    """The classification branch of a dense head alone (Monte-Carlo passes skip box regression)."""
    if isinstance(head, SSDHead):
        return [conv(f) for conv, f in zip(head.cls_convs, feats)]
    if isinstance(head, RetinaHead):
        maps = []
        for f in feats:
            for conv in head.cls_convs:
                f = conv(f)
            maps.append(head.retina_cls(f))
        return maps
    return head(feats)[0]


def single_conv_classifier(head: nn.Module) -> bool:
    """Whether ``head`` classifies each level with one plain 3x3 conv (SSD's default head)."""
    if not isinstance(head, SSDHead):
        return False
    for branch in head.cls_convs:
        convs = list(branch) if isinstance(branch, nn.Sequential) else [branch]
        if len(convs) != 1 or type(convs[0]) is not nn.Conv2d:
            return False
        conv = convs[0]
        if (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups) != ((3, 3), (1, 1), (1, 1),
                                                                                        (1, 1), 1) or conv.bias is None:
            return False
    return True


@ADAPTERS.register_module()
class DetectionAdapter:
    """Outputs of a single-stage anchor-based mmdet detector (SSD, RetinaNet, ...) for scorers.

    Args:
        model: The detector (``extract_feat`` plus a ``bbox_head`` with ``prior_generator``).
        requires: Output keys to compute: ``probs``, ``flip_probs``, ``mc_probs``, ``features``,
            ``pred_loss`` (see :mod:`mmal.scoring.scorers`).
        box_mode: ``'detections'`` (default): boxes that survive class-wise NMS with a score of
            at least ``score_thr``, each scored on its anchor's full class distribution.
            ``'anchors'``: every anchor, before NMS.
        score_thr: Detection score threshold of the ``detections`` mode.
        nms_iou: IoU threshold of the class-wise NMS.
        nms_pre: At most this many candidates per image enter NMS (highest scores first).
        max_per_img: At most this many boxes kept per image.
        mc_samples: Monte-Carlo dropout passes of the head (``T``).
        dropout_p: Dropout probability on the head's input feature maps for ``mc_probs``.
        feature_level: Which ``extract_feat`` level is averaged into the image feature.
    """

    def __init__(self,
                 model: nn.Module,
                 requires: Collection[str],
                 box_mode: str = 'detections',
                 score_thr: float = 0.5,
                 nms_iou: float = 0.45,
                 nms_pre: int = 1000,
                 max_per_img: int = 200,
                 mc_samples: int = 10,
                 dropout_p: float = 0.1,
                 feature_level: int = -1) -> None:
        unknown = set(requires) - OUTPUT_KEYS
        if unknown:
            raise ValueError(f'unknown model outputs {sorted(unknown)}; known: {sorted(OUTPUT_KEYS)}.')
        if box_mode not in BOX_MODES:
            raise ValueError(f'box_mode must be one of {BOX_MODES}, got {box_mode!r}.')
        head = getattr(model, 'bbox_head', None)
        if head is None or not hasattr(head, 'prior_generator') or not hasattr(head, 'cls_out_channels'):
            raise TypeError(f'{type(model).__name__} has no anchor-based dense bbox_head; DetectionAdapter '
                            'supports single-stage anchor detectors such as SSD and RetinaNet.')
        if AUG_PROBS in requires:
            raise TypeError('DetectionAdapter has no augmented views; for detection use the Consistency '
                            'scorer (symmetric KL under a horizontal flip, CSD\'s inconsistency).')
        if PRED_LOSS in requires and not hasattr(model, 'predict_loss'):
            raise TypeError(f'{type(model).__name__} has no loss-prediction module; use an LLAL detector '
                            '(type=\'LLALSingleStageDetector\') for the LossPrediction scorer.')
        self.model, self.head, self.requires = model, head, frozenset(requires)
        self.box_mode, self.score_thr, self.nms_iou = box_mode, score_thr, nms_iou
        self.nms_pre, self.max_per_img = nms_pre, max_per_img
        self.mc_samples, self.dropout_p, self.feature_level = mc_samples, dropout_p, feature_level

    # -- one batch ---------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, data: Dict) -> Dict:
        """Outputs for one dataloader batch: the required keys plus ``num_images`` and, for
        per-box outputs, ``image_index``."""
        self.model.eval()
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        out: Dict = {'num_images': inputs.shape[0]}
        if not self.requires:
            return out
        feats = self.model.extract_feat(inputs)
        if FEATURES in self.requires:
            out[FEATURES] = feats[self.feature_level].mean(dim=(2, 3))
        if PRED_LOSS in self.requires:
            out[PRED_LOSS] = self.model.predict_loss(feats)
        if not self.requires & {PROBS, FLIP_PROBS, MC_PROBS}:
            return out

        if self.box_mode == 'detections':
            cls_maps, box_maps = self.head(feats)
            image_index, anchor_index = self._detections(self._probs(cls_maps), cls_maps, box_maps, samples)
        else:
            cls_maps = classification_maps(self.head, feats)
            image_index, anchor_index = self._anchors(cls_maps)
        out['image_index'] = image_index
        keep = (image_index, anchor_index)
        if PROBS in self.requires:
            out[PROBS] = self._probs(cls_maps, keep)
        if FLIP_PROBS in self.requires:
            flipped = classification_maps(self.head, self.model.extract_feat(inputs.flip(-1)))
            # Mirror back along the width; SSD's (and RetinaNet's) anchors per location are flip-symmetric.
            out[FLIP_PROBS] = self._probs([m.flip(-1) for m in flipped], keep)
        if MC_PROBS in self.requires:
            out[MC_PROBS] = self._mc_probs(feats, keep)
        return out

    def _mc_probs(self, feats: Sequence[Tensor], keep: Tuple[Tensor, Tensor]) -> Tensor:
        """``[T, M, C+1]`` distributions of the kept boxes under dropout on the head's inputs."""
        if single_conv_classifier(self.head):
            return class_distribution(self._sparse_mc_logits(feats, keep), self.head.use_sigmoid_cls)
        return torch.stack([
            self._probs(classification_maps(self.head, [nnf.dropout(f, self.dropout_p, True) for f in feats]), keep)
            for _ in range(self.mc_samples)
        ])

    def _sparse_mc_logits(self, feats: Sequence[Tensor], keep: Tuple[Tensor, Tensor]) -> Tensor:
        """MC logits of a one-conv (3x3) classifier, evaluated only where boxes were kept.

        A kept box's logits depend only on the 3x3 neighbourhood of its location. The input
        elements of those neighbourhoods are gathered once, dropped out ``T`` times (one mask per
        element and pass, exactly as dropout on the whole map would draw them there), and the conv
        is applied at the kept locations as nine matrix products, one per kernel offset.
        """
        image_index, anchor_index = keep
        channels, device = self.head.cls_out_channels, anchor_index.device
        per_level = [n * f.shape[2] * f.shape[3] for n, f in zip(self.head.num_base_priors, feats)]
        starts = torch.tensor([0] + per_level[:-1], device=device).cumsum(0)
        level = torch.bucketize(anchor_index, starts, right=True) - 1
        logits = feats[0].new_zeros((self.mc_samples, len(anchor_index), channels))
        dy, dx = torch.meshgrid(torch.arange(3, device=device), torch.arange(3, device=device), indexing='ij')
        for lvl, (f, branch) in enumerate(zip(feats, self.head.cls_convs)):
            rows = (level == lvl).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            conv, num_base = branch[0], self.head.num_base_priors[lvl]
            height, width = f.shape[2:]
            local = anchor_index[rows] - starts[lvl]
            position, base = local // num_base, local % num_base
            # Kept locations (several anchors share one) and, in the zero-padded map, their neighbours.
            locations, loc_of_row = torch.unique(image_index[rows] * height * width + position, return_inverse=True)
            b, y, x = locations // (height * width), (locations % (height * width)) // width, locations % width
            neighbours = (b[:, None] * (height + 2) + y[:, None] + dy.flatten()) * (width + 2) + x[:, None] + dx.flatten()
            elements, neighbour_slot = torch.unique(neighbours, return_inverse=True)  # [U], [L, 9]
            values = nnf.pad(f, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, f.shape[1])[elements]
            dropped = nnf.dropout(values.expand(self.mc_samples, -1, -1), self.dropout_p, True)  # [T, U, C_in]
            out = conv.bias.expand(self.mc_samples, len(locations), -1).clone()
            for k in range(9):
                out += dropped[:, neighbour_slot[:, k]] @ conv.weight[:, :, k // 3, k % 3].T
            out = out.view(self.mc_samples, len(locations), num_base, channels)
            logits[:, rows] = out[:, loc_of_row, base]
        return logits

    def _probs(self, cls_maps: Sequence[Tensor], keep: Tuple[Tensor, Tensor] = None) -> Tensor:
        """Class distributions of all anchors ``[B, A, C+1]``, or of the ``keep`` (image, anchor) rows."""
        logits = level_logits(cls_maps, self.head.cls_out_channels)
        if keep is not None:
            logits = logits[keep]
        return class_distribution(logits, self.head.use_sigmoid_cls)

    def _anchors(self, cls_maps: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """(image, anchor) index of every anchor of the batch."""
        batch, device = cls_maps[0].shape[0], cls_maps[0].device
        num_anchors = sum(m.shape[1] // self.head.cls_out_channels * m.shape[2] * m.shape[3] for m in cls_maps)
        image_index = torch.arange(batch, device=device).repeat_interleave(num_anchors)
        return image_index, torch.arange(num_anchors, device=device).repeat(batch)

    def _detections(self, probs: Tensor, cls_maps: Sequence[Tensor], box_maps: Sequence[Tensor],
                    samples: Sequence) -> Tuple[Tensor, Tensor]:
        """(image, anchor) index of every box kept by score threshold and class-wise NMS."""
        batch, device = probs.shape[0], probs.device
        priors = torch.cat(self.head.prior_generator.grid_priors([m.shape[-2:] for m in cls_maps], device=device))
        deltas = level_logits(box_maps, self.head.bbox_coder.encode_size)
        images: List[Tensor] = []
        anchors: List[Tensor] = []
        for b in range(batch):
            foreground = probs[b, :, :-1]
            anchor, label = (foreground >= self.score_thr).nonzero(as_tuple=True)
            scores = foreground[anchor, label]
            if len(scores) > self.nms_pre:
                top = scores.topk(self.nms_pre).indices
                anchor, label, scores = anchor[top], label[top], scores[top]
            if len(scores):
                boxes = self.head.bbox_coder.decode(priors[anchor], deltas[b, anchor],
                                                    max_shape=samples[b].metainfo['img_shape'])
                _, keep = batched_nms(boxes, scores, label, dict(type='nms', iou_threshold=self.nms_iou))
                anchor = anchor[keep[:self.max_per_img]]
            images.append(torch.full_like(anchor, b))
            anchors.append(anchor)
        return torch.cat(images), torch.cat(anchors)
