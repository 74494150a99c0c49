"""Work-arounds for known bugs of the pinned OpenMMLab stack; the only module that patches it.

Each fix tests for the broken behaviour itself (no version asserts) and leaves the stack alone
where the bug is absent, so a fixed upstream release makes it a no-op. They are applied once, when
``mmal`` is imported, so a plain mmdet config gains them with ``custom_imports=dict(imports=['mmal'])``.

=============================================  =================================================================
bug (versions)                                 upstream
=============================================  =================================================================
``SSDHead`` cannot ``predict``: its            open-mmlab/mmdetection#11780 and #11063 (open); the fix proposed
``__init__`` skips ``AnchorHead.__init__``,    in PR #11524 was not merged. mmdet 3.2.0 and 3.3.0 (since
so ``predict_by_feat`` reads a ``loss_cls``    ``predict_by_feat`` reads ``loss_cls.custom_cls_channels``).
that does not exist (``AttributeError``).
mmengine's local checkpoint loader calls       open-mmlab/mmengine#1655; PR #1650 (open) would pass
``torch.load`` with the default                ``weights_only=False``, which runs code from the file.
``weights_only``, ``True`` since torch 2.6:    mmengine 0.10.x with torch >= 2.6.
its own checkpoints (``HistoryBuffer``,
numpy state) no longer load, so ``resume``
and ``load_from`` fail.
=============================================  =================================================================

Distributed runs without CUDA are not a bug fix but a feature mmengine lacks (:mod:`mmal.dist`);
the checkpoint trust policy is :mod:`mmal.checkpoint`.
"""
from __future__ import annotations

import functools
import inspect
import os.path as osp
import pickle
import tempfile
from typing import Any

import torch

from .checkpoint import load_local_checkpoint, safe_checkpoint_globals

_applied = False


def ssd_head_lacks_loss_cls() -> bool:
    """Whether mmdet's dense-head post-processing reads ``self.loss_cls`` while ``SSDHead.__init__``
    never sets it (mmdetection#11780)."""
    from mmdet.models.dense_heads import SSDHead
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead

    try:
        reads = 'self.loss_cls' in inspect.getsource(BaseDenseHead._predict_by_feat_single)
        return reads and 'self.loss_cls' not in inspect.getsource(SSDHead.__init__)
    except (OSError, TypeError):  # no source to read (patched interactively): leave the head alone
        return False


def fix_ssd_head() -> bool:
    """Give an ``SSDHead`` built without ``loss_cls`` the value ``None`` (SSD scores with softmax;
    ``predict_by_feat`` only asks ``loss_cls`` for custom channels).

    Returns:
        Whether the fix was needed (and is now installed).
    """
    from mmdet.models.dense_heads import SSDHead

    if getattr(SSDHead.__init__, '_mmal_fixed', False):
        return True
    if not ssd_head_lacks_loss_cls():
        return False
    original_init = SSDHead.__init__

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None

    __init__._mmal_fixed = True  # type: ignore[attr-defined]
    SSDHead.__init__ = __init__
    return True


def loader_refuses_own_checkpoints() -> bool:
    """Whether mmengine's local checkpoint loader fails on a checkpoint of mmengine's own types
    (torch >= 2.6 defaults to ``weights_only=True``; mmengine#1655). Tried on a tiny file."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    loader = CheckpointLoader._schemes.get('')
    if loader is None or getattr(loader, '_mmal_fixed', False):
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = osp.join(folder, 'probe.pth')
        torch.save(dict(message_hub=HistoryBuffer([1.0], [1])), probe)
        try:
            loader(probe, 'cpu')
        except pickle.UnpicklingError:
            return True
    return False


def fix_local_checkpoint_loading() -> bool:
    """Load mmengine's local checkpoints with :func:`mmal.checkpoint.load_local_checkpoint`.

    Returns:
        Whether the fix was needed (and is now installed).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    current = CheckpointLoader._schemes.get('')
    if current is not None and getattr(current, '_mmal_fixed', False):
        return True
    if not loader_refuses_own_checkpoints():
        return False
    torch.serialization.add_safe_globals(safe_checkpoint_globals())

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        return load_local_checkpoint(filename, map_location)

    load_from_local._mmal_fixed = True  # type: ignore[attr-defined]
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    return True


def apply() -> None:
    """Apply every fix that this stack needs, once (``import mmal`` calls it)."""
    global _applied
    if _applied:
        return
    fix_ssd_head()
    fix_local_checkpoint_loading()
    _applied = True
