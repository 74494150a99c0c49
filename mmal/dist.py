"""Distributed runs with or without CUDA (torchrun or Slurm; CPU processes use gloo).

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` and its runner wraps models with
``device_ids=[LOCAL_RANK]``; both fail without CUDA. :func:`init_dist` initialises the process
group itself for torchrun (``'pytorch'``) and Slurm (``'slurm'``: the ``SLURM_*`` variables become
torchrun's, see :func:`slurm_env`), gloo on CPU; :func:`distributed_cfg` points a config at it,
and :class:`CPUFriendlyDDP` drops ``device_ids`` for a CPU model.
"""
from __future__ import annotations

import atexit
import gc
import os
import re
import shutil
import subprocess
from typing import Dict, Mapping, Optional

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


def init_dist(launcher: str = 'pytorch', backend: Optional[str] = None, **kwargs) -> None:
    """Initialise torch.distributed for ``launcher``, on CPU (gloo) as well as on GPUs.

    Call it before building a ``Runner``: the runner then finds the process group ready and skips
    mmengine's CUDA-only initialisation.

    Args:
        launcher: ``'pytorch'`` (torchrun) or ``'slurm'`` (srun) are handled here; others go to mmengine.
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
    if launcher == 'slurm':
        os.environ.update(slurm_env(os.environ))
    elif launcher != 'pytorch':
        mmengine_init_dist(launcher, backend=backend, **kwargs)
        return
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **kwargs)


def first_host(node_list: str) -> str:
    """The first host of a Slurm node list (``node[01-04,07],gpu2`` -> ``node01``), through
    ``scontrol`` when it is installed, else parsed."""
    if shutil.which('scontrol'):
        out = subprocess.run(['scontrol', 'show', 'hostnames', node_list], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    found = re.match(r'([^,\[]+)(?:\[([^\]]+)\])?', node_list)
    if not found:
        return node_list
    prefix, ranges = found.groups()
    return prefix + (ranges.split(',')[0].split('-')[0] if ranges else '')


def slurm_env(env: Mapping[str, str]) -> Dict[str, str]:
    """torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
    from a Slurm task's (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODELIST``).
    ``MASTER_ADDR`` and ``MASTER_PORT`` already set are kept.

    Raises:
        UserError: A Slurm variable is missing (not started by srun).
    """
    from .errors import UserError

    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in env]
    if missing:
        raise UserError(f'--launcher slurm needs the variables srun sets ({", ".join(missing)} missing); start it '
                        'with tools/slurm_train.sh, or use --launcher pytorch with torchrun.')
    return dict(RANK=env['SLURM_PROCID'], WORLD_SIZE=env['SLURM_NTASKS'], LOCAL_RANK=env.get('SLURM_LOCALID', '0'),
                MASTER_ADDR=env.get('MASTER_ADDR') or first_host(env['SLURM_NODELIST']),
                MASTER_PORT=env.get('MASTER_PORT', '29500'))


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
