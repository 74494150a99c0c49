"""Work-arounds for known bugs of the pinned OpenMMLab stack; the only module that has any.

Each fix checks for the broken behaviour itself (no version asserts) and is applied once, when
``mmal`` is imported, so a plain mmdet config gains them with ``custom_imports=dict(imports=['mmal'])``.

1. mmdet 3.3.0 ``SSDHead.__init__`` skips ``AnchorHead.__init__``, so the head has no ``loss_cls``
   and ``predict`` fails with ``AttributeError``. Fixed by giving such a head ``loss_cls = None``
   (SSD scores with softmax; ``predict_by_feat`` only asks ``loss_cls`` for custom channels).
2. mmengine 0.10.7 loads checkpoints with ``torch.load``'s default, which is ``weights_only=True``
   on torch >= 2.6; its own full checkpoints (message hub, ``HistoryBuffer``, numpy state) then fail
   to unpickle, so ``resume`` and ``load_from`` break. Fixed without giving up the safety: the exact
   types such a checkpoint holds are allow-listed (``HistoryBuffer``, numpy arrays, dtypes and
   scalars, and a ``getattr`` that only returns ``HistoryBuffer``'s statistics functions), so
   loading still never runs code from the file. Anything else is refused with one sentence naming
   the file, unless the user trusts it (``--trust-checkpoint`` or ``MMAL_TRUST_CHECKPOINTS=1``).
3. mmengine's ``init_dist(launcher='pytorch')`` calls ``torch.cuda.set_device`` and its runner
   wraps models with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. :func:`init_dist`
   initialises a gloo process group on CPU, and :class:`CPUFriendlyDDP` drops ``device_ids`` for
   a CPU model.
4. mmengine 0.10.7 resolves ``mmdet::`` config bases through ``pkg_resources``, which setuptools
   >= 82 no longer ships. Fixed by answering those look-ups with ``importlib.metadata``.
5. mmdet 3.3.0 ``VOCMetric`` prints the 20 PASCAL class names for any dataset in a ``VOC2007``
   folder, even one with its own classes. Fixed by printing the dataset's own class names.
"""
from __future__ import annotations

import atexit
import functools
import gc
import importlib.metadata
import importlib.util
import os
import os.path as osp
import pickle
import re
from typing import Optional

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .errors import UserError

_applied = False


# 1. SSDHead.predict ---------------------------------------------------------------------------
def _fix_ssd_head() -> None:
    from mmdet.models.dense_heads import SSDHead

    if getattr(SSDHead.__init__, '_mmal_fixed', False):
        return
    original_init = SSDHead.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None

    __init__._mmal_fixed = True
    SSDHead.__init__ = __init__


# 2. checkpoint loading on torch >= 2.6 ------------------------------------------------------------
_trusted = False


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


def _safe_checkpoint_globals() -> list:
    """The types an mmengine checkpoint holds besides tensors, under every name numpy 1 and 2 use."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    found = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        found += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return found


def load_local_checkpoint(filename: str, map_location=None):
    """Load a local checkpoint without running code from it (``weights_only`` with the types of
    mmengine's checkpoints allowed), or fully when checkpoints are trusted.

    Raises:
        FileNotFoundError: No such file.
        UnsafeCheckpointError: The file holds anything else (one sentence naming it and the fix).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if checkpoints_trusted():
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r'GLOBAL (\S+)|getattr\([^)]*\)', str(err))
        what = found.group(1) or found.group(0) if found else 'an object that is not weights'
        raise UnsafeCheckpointError(f'{filename} was refused: it holds {what}, and loading it could run code; pass '
                                    '--trust-checkpoint (or set MMAL_TRUST_CHECKPOINTS=1) only if you trust the '
                                    'file.') from None


def _fix_local_checkpoint_loading() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    current = CheckpointLoader._schemes.get('')
    if current is not None and getattr(current, '_mmal_fixed', False):
        return
    torch.serialization.add_safe_globals(_safe_checkpoint_globals())

    def load_from_local(filename: str, map_location=None):
        return load_local_checkpoint(filename, map_location)

    load_from_local._mmal_fixed = True
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


# 3. distributed runs without CUDA -------------------------------------------------------------------
def init_dist(launcher: str = 'pytorch', backend: Optional[str] = None, **kwargs) -> None:
    """Initialise torch.distributed for ``launcher``, on CPU (gloo) as well as on GPUs.

    Call it before building a ``Runner``: the runner then finds the process group ready and skips
    mmengine's CUDA-only initialisation.

    Args:
        launcher: ``'pytorch'`` (torchrun) is handled here; others go to mmengine.
        backend: Communication backend; defaults to ``'nccl'`` with CUDA and ``'gloo'`` without.
        **kwargs: Passed to ``torch.distributed.init_process_group``.
    """
    import torch.distributed as dist
    from mmengine.dist import init_dist as mmengine_init_dist

    if dist.is_available() and dist.is_initialized():
        return
    # A process that exits with its gloo group alive can abort (SIGABRT) while the interpreter
    # shuts down; leave the group first, on every way out.
    atexit.register(destroy_dist)
    cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if cuda else 'gloo')
    if launcher != 'pytorch' or (cuda and backend == 'nccl'):
        mmengine_init_dist(launcher, backend=backend, **kwargs)
        return
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **kwargs)


def destroy_dist() -> None:
    """Destroy the default process group if there is one (registered at exit by :func:`init_dist`).

    The DDP wrapper of a finished runner still holds the group, and a runner lives in reference
    cycles, so collect them first: the group and its gloo threads then go now, while the
    interpreter is whole, instead of during its shutdown, where they can abort the process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@MODEL_WRAPPERS.register_module()
class CPUFriendlyDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that drops ``device_ids`` for a model on the CPU.

    mmengine's runner always passes ``device_ids=[LOCAL_RANK]``, which torch refuses for CPU
    modules. Select it with ``model_wrapper_cfg=dict(type='CPUFriendlyDDP')``.
    """

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


# 4. mmdet:: config bases without pkg_resources ----------------------------------------------------
def _distribution(package: str) -> Optional[importlib.metadata.Distribution]:
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_installed(package: str) -> bool:
    """Whether ``package`` is installed (mmengine's ``is_installed`` without pkg_resources)."""
    if _distribution(package) is not None:
        return True
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


def get_installed_path(package: str) -> str:
    """Folder of an installed package (mmengine's ``get_installed_path`` without pkg_resources).

    Args:
        package: Distribution or module name, e.g. ``'mmdet'``.

    Returns:
        The package's folder, e.g. ``.../site-packages/mmdet``.
    """
    module = package
    dist = _distribution(package)
    if dist is not None:
        top_level = dist.read_text('top_level.txt')
        if top_level and top_level.split():
            module = top_level.split()[0]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f'package {package!r} is not installed; install it with pip.')
    return osp.dirname(spec.origin)


def _fix_package_lookup() -> None:
    import mmengine.config.config as config_module
    import mmengine.utils as utils
    import mmengine.utils.package_utils as package_utils

    for module in (package_utils, utils, config_module):
        module.is_installed = is_installed
        module.get_installed_path = get_installed_path


def distributed_cfg(cfg, launcher: str) -> None:
    """Adapt an mmengine config in place for a distributed run that may have no CUDA.

    Sets ``cfg.launcher``; without CUDA also the gloo backend and :class:`CPUFriendlyDDP`.

    Args:
        cfg: The mmengine ``Config`` of the run.
        launcher: ``'none'`` for a single process, ``'pytorch'`` under torchrun.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        cfg.model_wrapper_cfg = {**wrapper, 'type': 'CPUFriendlyDDP'}


# 5. VOCMetric class names ---------------------------------------------------------------------------
def _fix_voc_metric_class_names() -> None:
    from mmdet.datasets import VOCDataset
    from mmdet.evaluation.metrics import VOCMetric

    if getattr(VOCMetric.compute_metrics, '_mmal_fixed', False):
        return
    original = VOCMetric.compute_metrics
    voc_classes = tuple(VOCDataset.METAINFO['classes'])

    @functools.wraps(original)
    def compute_metrics(self, results):
        meta = self.dataset_meta
        if meta and meta.get('dataset_type') and tuple(meta['classes']) != voc_classes:
            # Without a dataset_type the metric labels its table with the dataset's classes.
            self._dataset_meta = {**meta, 'dataset_type': None}
            try:
                return original(self, results)
            finally:
                self._dataset_meta = meta
        return original(self, results)

    compute_metrics._mmal_fixed = True
    VOCMetric.compute_metrics = compute_metrics


def apply() -> None:
    """Apply every fix once (``import mmal`` calls it)."""
    global _applied
    if _applied:
        return
    _fix_package_lookup()
    _fix_ssd_head()
    _fix_local_checkpoint_loading()
    _fix_voc_metric_class_names()
    _applied = True
