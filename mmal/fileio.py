"""Crash-safe writes: a file is either its old content or its complete new content."""
from __future__ import annotations

import errno
import json
import os
import os.path as osp
import tempfile
from typing import Any, List

from .errors import UserError

#: Every temporary file mmal writes ends so; a resumed run deletes the ones an interruption left.
TEMP_SUFFIX = '.mmal.tmp'

#: The errors of a write that cannot succeed as things are: no space, a read-only file system, a file
#: size limit, a quota, a name too long.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT, errno.ENAMETOOLONG})


def is_write_error(err: BaseException) -> bool:
    """Whether ``err`` is a write that cannot succeed (:data:`WRITE_ERRNOS`), not a file that cannot be read."""
    return isinstance(err, OSError) and err.errno in WRITE_ERRNOS


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of written files: what ``open()`` would give (0666 minus the umask), not mkstemp's 0600.
FILE_MODE = 0o666 & ~_umask()


def check_output_file(path: str, option: str) -> None:
    """Check, before any work, that ``path`` can become a file: not an existing folder, and its folder
    is a folder (created later if missing).

    Args:
        path: The file to be written.
        option: How the user named it (e.g. ``'--out'``), for the sentence.

    Raises:
        UserError: ``path`` is a folder, or a file stands where its folder should be.
    """
    if osp.isdir(path):
        raise UserError(f'{option} {path} is a folder; pass a file name (e.g. {osp.join(path, "selected.json")}).')
    parent = osp.dirname(osp.abspath(path))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise UserError(f'{option} {path} cannot be written: {parent} is a file, not a folder; choose another path.')


def check_output_folder(path: str, option: str) -> None:
    """Check, before any work, that ``path`` is a folder or can be made one.

    Raises:
        UserError: ``path`` or a folder above it is a file.
    """
    probe = osp.abspath(path)
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        raise UserError(f'{option} {path} cannot be a folder: {probe} is a file; choose another path.')


def temp_path(path: str) -> str:
    """A new, unique temporary file beside ``path`` (created empty), for writing then renaming."""
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=TEMP_SUFFIX, dir=osp.dirname(osp.abspath(path)))
    os.close(fd)
    return tmp


def commit(tmp: str, path: str) -> None:
    """Give ``tmp`` normal permissions, fsync it, rename it to ``path`` and fsync the folder."""
    os.chmod(tmp, FILE_MODE)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(osp.dirname(osp.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename (see
    :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file, fsync and rename.

    Args:
        path: Destination; its folder is created if missing.
        data: The whole content.

    Raises:
        OSError: The write failed; ``filename`` is ``path`` (not the temporary file), and ``path``
            keeps its old content.
    """
    tmp = None
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = temp_path(path)
        with open(tmp, 'wb') as f:
            f.write(data)
        commit(tmp, path)
    except BaseException as err:
        if tmp is not None and osp.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, path) from None
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """:func:`atomic_write_text` of ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=1) + '\n')


#: The image files a pool folder lists.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(folder: str) -> List[str]:
    """Every image file under ``folder`` (subfolders included), relative to it, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(root, name)
            if name.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(path):  # regular files only (no pipes)
                found.append(osp.relpath(path, folder))
    return sorted(found)
