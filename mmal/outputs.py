"""The contract between adapters (model + batch -> outputs) and scorers / selectors. Pure torch.

An adapter turns one batch into a :class:`ModelOutputs` dict holding exactly the keys a scorer and
a selector declared in their ``requires``. ``M`` rows are boxes (detection) or images
(classification), ``N`` images, ``K`` classes (background last for detectors), ``T`` Monte-Carlo
samples, ``D`` feature channels.

====================  ================  ===============================================================
key                   shape             meaning
====================  ================  ===============================================================
``probs``             ``[M, K]``        class probabilities
``log_probs``         ``[M, K]``        the same as exact log-probabilities (no clamping)
``flip_log_probs``    ``[M, K]``        log-probabilities of the horizontally flipped input, aligned
``mc_probs``          ``[T, M, K]``     probabilities of ``T`` Monte-Carlo dropout passes
``last_layer_input``  ``[M, D]``        input of the last (classification) layer for each row (BADGE)
``features``          ``[N, D]``        one feature vector per image
``pred_loss``         ``[N]``           predicted loss per image (LLAL)
``aug_probs``         ``[V, N, K]``     probabilities of ``V`` augmented views of each image
``boxes``             ``[M, 4]``        each row's kept detection box (xyxy, input pixels)
``labels``            ``[M]``           the class it was kept under (its best-scoring one)
``scores``            ``[M]``           its detection score
``box_stability``     ``[M]``           mean IoU of the row's box with its best match in passes on noisy
                                        copies of the input (Kao et al.'s localization stability)
``proposal_iou``      ``[M]``           IoU of the row's proposal with its refined box (localization
                                        tightness; two-stage detectors)
``class_quality``     ``[C]``           per-class detection quality recorded during training (PPAL)
``image_index``       ``[M]``           image of each box; absent when the ``M`` rows are images
``num_images``        ``int``           ``N``; always present
====================  ================  ===============================================================
"""
from __future__ import annotations

from typing import Collection, Dict, Final, FrozenSet, Mapping, Tuple, TypedDict

from torch import Tensor

PROBS: Final = 'probs'
LOG_PROBS: Final = 'log_probs'
FLIP_LOG_PROBS: Final = 'flip_log_probs'
MC_PROBS: Final = 'mc_probs'
LAST_LAYER_INPUT: Final = 'last_layer_input'
FEATURES: Final = 'features'
PRED_LOSS: Final = 'pred_loss'
AUG_PROBS: Final = 'aug_probs'
BOXES: Final = 'boxes'
LABELS: Final = 'labels'
SCORES: Final = 'scores'
BOX_STABILITY: Final = 'box_stability'
PROPOSAL_IOU: Final = 'proposal_iou'
CLASS_QUALITY: Final = 'class_quality'
IMAGE_INDEX: Final = 'image_index'
NUM_IMAGES: Final = 'num_images'


class ModelOutputs(TypedDict, total=False):
    """One batch of model outputs (see the module docstring for shapes)."""

    num_images: int
    image_index: Tensor
    probs: Tensor
    log_probs: Tensor
    flip_log_probs: Tensor
    mc_probs: Tensor
    last_layer_input: Tensor
    features: Tensor
    pred_loss: Tensor
    aug_probs: Tensor
    boxes: Tensor
    labels: Tensor
    scores: Tensor
    box_stability: Tensor
    proposal_iou: Tensor
    class_quality: Tensor


#: For each output key: which dimension counts the rows, and whether rows are boxes or images.
#: ``'row'`` outputs have one row per box (or per image without ``image_index``); ``'image'``
#: outputs have one row per image whatever the task; ``'model'`` outputs describe the model (no rows).
_ROW_DIM: Dict[str, Tuple[int, str]] = {
    PROBS: (0, 'row'), LOG_PROBS: (0, 'row'), FLIP_LOG_PROBS: (0, 'row'), MC_PROBS: (1, 'row'),
    LAST_LAYER_INPUT: (0, 'row'), FEATURES: (0, 'image'), PRED_LOSS: (0, 'image'), AUG_PROBS: (1, 'image'),
    BOXES: (0, 'row'), LABELS: (0, 'row'), SCORES: (0, 'row'), BOX_STABILITY: (0, 'row'), PROPOSAL_IOU: (0, 'row'),
    CLASS_QUALITY: (0, 'model'),
}

#: Every output an adapter may be asked for.
OUTPUT_KEYS: FrozenSet[str] = frozenset(_ROW_DIM)


def check_requires(requires: Collection[str], provides: Collection[str], who: str) -> FrozenSet[str]:
    """Validate requested output keys against what ``who`` can compute.

    Args:
        requires: Keys a scorer / selector asked for.
        provides: Keys the adapter can compute.
        who: Name of the adapter, for the message.

    Returns:
        ``requires`` as a frozenset.

    Raises:
        ValueError: A key no adapter knows.
        TypeError: A key this adapter cannot compute (the message names the ones it can).
    """
    requires = frozenset(requires)
    unknown = requires - OUTPUT_KEYS
    if unknown:
        raise ValueError(f'unknown model outputs {sorted(unknown)}; known: {sorted(OUTPUT_KEYS)}.')
    missing = requires - frozenset(provides)
    if missing:
        raise TypeError(f'{who} cannot compute {sorted(missing)}; it provides {sorted(provides)}.')
    return requires


def check_outputs(outputs: Mapping, requires: Collection[str], who: str = 'the scorer') -> None:
    """Check that one batch of outputs holds ``requires`` with consistent row counts.

    Args:
        outputs: The adapter's outputs.
        requires: Keys that must be present.
        who: Reader of the outputs, for the message.

    Raises:
        KeyError: A required key is missing.
        ValueError: Row counts disagree with ``num_images`` / ``image_index``.
    """
    missing = set(requires) - set(outputs)
    if missing:
        raise KeyError(f'{who} needs the model outputs {sorted(missing)}, which the adapter did not provide; '
                       'build the adapter with the `requires` of the scorer and the selector.')
    if NUM_IMAGES not in outputs:
        raise KeyError(f'model outputs for {who} lack `num_images`.')
    num_images = int(outputs[NUM_IMAGES])
    index = outputs.get(IMAGE_INDEX)
    if index is not None and index.numel() and not 0 <= int(index.min()) <= int(index.max()) < num_images:
        raise ValueError(f'image_index must lie in [0, {num_images}).')
    num_rows = num_images if index is None else index.shape[0]
    for key in requires:
        dim, level = _ROW_DIM[key]
        if level == 'model':
            continue
        expected = num_rows if level == 'row' else num_images
        got = outputs[key].shape[dim]
        if got != expected:
            raise ValueError(f'model output {key!r} has {got} rows on dimension {dim}, expected {expected} '
                             f'({"boxes" if level == "row" and index is not None else "images"}).')
