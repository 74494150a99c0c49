"""Crash-safe writes: a file is either its old content or its complete new content."""
from __future__ import annotations

import errno
import json
import os
import os.path as osp
import tempfile
from typing import Any, List

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
