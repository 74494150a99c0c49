"""One writer at a time: the lock every command that changes a labeling project holds.

The lock is an ``flock`` on ``<project>/.lock``: the operating system releases it when its process
ends, however it ends, so a crash leaves no stale lock. The file records who holds it, for the
sentence a second command prints.
"""
from __future__ import annotations

import fcntl
import os
import os.path as osp
import time
from contextlib import contextmanager
from typing import Iterator

from ..errors import UserError

LOCK_FILE = '.lock'


@contextmanager
def project_lock(root: str, command: str) -> Iterator[None]:
    """Hold the project's lock while the block runs.

    Args:
        root: The project folder (it must exist).
        command: What holds it, for the message a second command prints (e.g. ``'import'``).

    Raises:
        UserError: Another command holds it (one sentence naming it, its process and since when).
    """
    path = osp.join(root, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f'cannot open the project lock {path} ({err.strerror}); check the folder\'s permissions.') \
            from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode('utf-8', 'replace').strip() or 'another command'
            raise UserError(f'{root} is being changed by {holder}; wait until it ends, then run this command '
                            'again.') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'`al_project.py {command}` (pid {os.getpid()}, since {time.strftime("%H:%M:%S")})'
                  .encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
