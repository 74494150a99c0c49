"""Train, then keep the model: the one way a cycle's (or a labeling project's) model is made."""
from __future__ import annotations

import os.path as osp

from mmengine.dist import barrier, get_rank
from mmengine.runner import Runner

from .. import interrupt
from ..datasets.unreadable import is_unreadable
from ..errors import UserError
from ..fileio import commit, temp_path


def train_and_save(runner: Runner, path: str, what: str, again: str) -> None:
    """Run ``runner.train()``, then write the model's weights (no optimizer or scheduler state) to
    ``path`` atomically on rank 0; every rank returns once the file is there.

    Args:
        runner: A runner built for training.
        path: The checkpoint to write (e.g. ``cycle_0/model.pth``).
        what: Names the training in messages (e.g. ``'trial 0 cycle 1'``).
        again: How to run it again, ending the sentence of an unreadable image (e.g. ``'with --resume'``).

    Raises:
        UserError: A training image cannot be read.
    """
    interrupt.check()
    try:
        runner.train()
    except Exception as err:
        if not is_unreadable(err):
            raise
        raise UserError(f'a training image of {what} cannot be read ({type(err).__name__}: {err}); fix or remove '
                        f'that file, then run again {again}.') from None
    if get_rank() == 0:
        tmp = temp_path(path)
        runner.save_checkpoint(osp.dirname(tmp), osp.basename(tmp), save_optimizer=False, save_param_scheduler=False)
        commit(tmp, path)
    barrier()
