"""The checkpoint trust policy: local checkpoints load without running code from them.

torch >= 2.6 loads with ``weights_only=True``; mmengine's own full checkpoints (message hub,
``HistoryBuffer``, numpy state) then fail to unpickle. The exact types such a checkpoint holds are
allow-listed (``HistoryBuffer``, numpy arrays, dtypes and scalars, and a ``getattr`` that only
returns ``HistoryBuffer``'s statistics functions), so loading still never runs code from the file.
Anything else is refused with one sentence naming the file, unless the user trusts it
(``--trust-checkpoint`` or ``MMAL_TRUST_CHECKPOINTS=1``). :mod:`mmal.compat` installs
:func:`load_local_checkpoint` as mmengine's loader for local files.
"""
from __future__ import annotations

import copy
import importlib
import os
import os.path as osp
import pickle
import re
from typing import Any, List

import torch

from .errors import UserError

_trusted = False

#: Where a model carries PPAL's per-class detection quality (:class:`mmal.engine.ClassQualityHook`):
#: the model's attribute and the key of a checkpoint's ``meta``.
CLASS_QUALITY_ATTR = 'mmal_class_quality'


class UnsafeCheckpointError(UserError):
    """A checkpoint holds something other than weights and mmengine's bookkeeping."""


def trust_checkpoints(trusted: bool = True) -> None:
    """Load local checkpoints with full unpickling (``--trust-checkpoint``): only for files you trust,
    since unpickling can run any code the file holds."""
    global _trusted
    _trusted = trusted


def checkpoints_trusted() -> bool:
    """Whether local checkpoints are fully unpickled (:func:`trust_checkpoints` or ``MMAL_TRUST_CHECKPOINTS=1``)."""
    return _trusted or os.environ.get('MMAL_TRUST_CHECKPOINTS', '') == '1'


def _history_buffer_getattr(obj, name: str):
    """``getattr`` as mmengine's checkpoints use it: a ``HistoryBuffer`` statistics function, nothing else."""
    from mmengine.logging.history_buffer import HistoryBuffer

    statistics = ('min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in statistics:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not allowed')


def safe_checkpoint_globals() -> List[Any]:
    """The types an mmengine checkpoint holds besides tensors, under every name numpy 1 and 2 use."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = importlib.import_module('numpy._core.multiarray' if hasattr(np, '_core') else 'numpy.core.multiarray')
    found = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        found += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return found


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint without running code from it (``weights_only`` with the types of
    mmengine's checkpoints allowed), or fully when checkpoints are trusted.

    Raises:
        UserError: No such file, an empty, truncated or damaged file, or not a PyTorch checkpoint.
        UnsafeCheckpointError: The file holds anything else (one sentence naming it and the fix).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        what = 'is a folder' if osp.isdir(filename) else 'does not exist'
        raise UserError(f'the checkpoint {filename} {what}; pass the path of a .pth file.')
    if os.path.getsize(filename) == 0:
        raise UserError(f'the checkpoint {filename} is empty; pass a checkpoint saved by mmengine or '
                        'tools/al_train.py (an interrupted copy or download leaves such files).')
    try:
        return torch.load(filename, map_location=map_location, weights_only=not checkpoints_trusted())
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err):
            raise _not_a_checkpoint(filename, err) from None
        found = re.search(r'GLOBAL (\S+)|getattr\([^)]*\)', str(err))
        what = found.group(1) or found.group(0) if found else 'an object that is not weights'
        raise UnsafeCheckpointError(f'{filename} was refused: it holds {what}, and loading it could run code; pass '
                                    '--trust-checkpoint (or set MMAL_TRUST_CHECKPOINTS=1) only if you trust the '
                                    'file.') from None
    except Exception as err:  # noqa: BLE001 - torch's unpickler fails in many ways on a file that is not a checkpoint
        raise _not_a_checkpoint(filename, err) from None


def _not_a_checkpoint(filename: str, err: BaseException) -> UserError:
    first = str(err).splitlines()[0] if str(err) else ''
    return UserError(f'the checkpoint {filename} cannot be loaded: it is truncated, damaged or not a PyTorch '
                     f'checkpoint ({type(err).__name__}: {first[:200]}); copy or save it again.')


def read_checkpoint(path: str, fix: str) -> Any:
    """Load ``path`` on the CPU under the trust policy, as a check that it can be used.

    Args:
        path: The checkpoint.
        fix: What to do when it cannot be loaded, ending the sentence (e.g. ``'delete it and run again'``).

    Raises:
        UserError: It cannot be loaded (names the file, the cause and ``fix``).
    """
    try:
        return load_local_checkpoint(path, map_location='cpu')
    except UnsafeCheckpointError:
        raise
    except UserError as err:
        raise UserError(f'{str(err).rsplit(";", 1)[0]}; {fix}.') from None


def config_checkpoints(cfg: Any) -> List[str]:
    """The local checkpoints a config loads: ``load_from`` and every ``init_cfg`` of type ``Pretrained``
    whose ``checkpoint`` is a path (not a URL or an ``open-mmlab://`` style name)."""
    found: List[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
                found.append(node['checkpoint'])
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    if cfg.get('load_from'):
        found.append(cfg['load_from'])
    walk(cfg.get('model', {}))
    return [p for p in found if '://' not in p]


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load ``path`` into ``model`` strictly, with the per-class detection quality its ``meta`` holds
    (:data:`CLASS_QUALITY_ATTR`).

    Raises:
        UserError: The checkpoint is not of this model (names what does not fit).
    """
    checkpoint = load_local_checkpoint(path, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f'{path} holds no model weights (no state_dict of tensors); pass a checkpoint saved by '
                        'mmengine or tools/al_train.py.')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        if mismatched:
            key = mismatched[0]
            example = f'{key} is {tuple(state[key].shape)} there but {tuple(own[key].shape)} here'
        else:
            example = f'e.g. {(missing or unexpected)[0]}'
        raise UserError(f'{path} is not a checkpoint of this config\'s model ({len(missing)} weights missing, '
                        f'{len(unexpected)} unexpected, {len(mismatched)} of another shape: {example}); pass the '
                        'checkpoint trained with this config.')
    model.load_state_dict(state, strict=True)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and meta.get(CLASS_QUALITY_ATTR) is not None:
        setattr(model, CLASS_QUALITY_ATTR, torch.as_tensor(meta[CLASS_QUALITY_ATTR], dtype=torch.float32))


def build_model(cfg: Any, checkpoint: str) -> torch.nn.Module:
    """The config's model (``cfg.model``, any mmdet-scope type) with the weights of ``checkpoint``, in eval mode."""
    from mmdet.registry import MODELS  # the registry that builds every model a config names
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('backbone', {}).get('init_cfg'):
        model_cfg['backbone']['init_cfg'] = None  # the checkpoint has the weights
    model = MODELS.build(model_cfg)
    load_weights(model, checkpoint)
    return model.eval()
