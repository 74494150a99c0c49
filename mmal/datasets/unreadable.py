"""Streaming a pool whose image files may be missing or damaged: such images are skipped and
reported, never fatal, and nothing else passes for a bad image."""
from __future__ import annotations

import os
import stat
from typing import Any, Dict, List, Optional, Tuple

from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader, Dataset

from ..fileio import is_write_error


def is_unreadable(err: BaseException) -> bool:
    """Whether ``err`` says an image file is missing, unreadable or undecodable (and nothing else:
    a bug in a pipeline must not pass for a bad image)."""
    if isinstance(err, OSError):  # missing, permission, truncated / unidentified image (PIL)
        return not is_write_error(err)  # a full disk or a size limit is not a bad image
    if type(err).__name__ == 'error' and type(err).__module__ == 'cv2':
        return True
    return isinstance(err, AssertionError) and 'failed to load image' in str(err)  # mmcv's LoadImageFromFile


#: The most pixels (width x height) of a pool image mmal decodes: PIL's decompression-bomb limit.
#: ``MMAL_MAX_PIXELS`` sets another.
DEFAULT_MAX_PIXELS = 178_956_970


def max_pixels() -> int:
    """The pixel limit of pool images (:data:`DEFAULT_MAX_PIXELS`, or ``MMAL_MAX_PIXELS``)."""
    value = os.environ.get('MMAL_MAX_PIXELS', '')
    return int(value) if value.isdigit() else DEFAULT_MAX_PIXELS


def file_problem(path: Optional[str]) -> Optional[str]:
    """Why the image file at ``path`` must not be read, found without decoding it: not a regular file
    (a pipe or a device could block the run or never end), or more pixels than :func:`max_pixels`
    (read from its header). None when it may be read (a missing or damaged file is left to the loader,
    which reports it)."""
    if not path or not os.path.exists(path):
        return None
    if not stat.S_ISREG(os.stat(path).st_mode):
        return f'{path} is not a regular file (a pipe, device or folder); only image files are read'
    from PIL import Image

    limit = max_pixels()
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the header alone: nothing is decoded
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    if width * height > limit:
        return (f'{path} has {width}x{height} pixels, more than the limit of {limit} (set MMAL_MAX_PIXELS to read '
                'larger images)')
    return None


def _checked(dataset: Any, index: int) -> Any:
    """``dataset[index]`` after :func:`file_problem` found nothing wrong with its file.

    Raises:
        OSError: The file must not be read (``is_unreadable`` counts it as unreadable).
    """
    info = dataset.get_data_info(index) if hasattr(dataset, 'get_data_info') else {}
    problem = file_problem(info.get('img_path') if isinstance(info, dict) else None)
    if problem:
        raise OSError(problem)
    return dataset[index]


def read_error(dataset: Any, index: int) -> Optional[str]:
    """The read error of ``dataset[index]`` as ``'Type: message'``, or None when it loads.

    Raises:
        Exception: Any error that is not an unreadable image (:func:`is_unreadable`).
    """
    try:
        _checked(dataset, index)
    except Exception as err:
        if not is_unreadable(err):
            raise
        return f'{type(err).__name__}: {err}'
    return None


class SkipUnreadable(Dataset):
    """Wraps a dataset so that an image that cannot be read is skipped and reported, not fatal.

    Items become ``(index, item, None)``, or ``(index, None, error)`` when the file cannot be read.
    Any other exception propagates.

    Args:
        dataset: Any map-style dataset.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Tuple[int, Any, Optional[str]]:
        try:
            return idx, _checked(self.dataset, idx), None
        except Exception as err:
            if not is_unreadable(err):
                raise
            return idx, None, f'{type(err).__name__}: {err}'


def collate_skipping(batch: List[Tuple[int, Any, Optional[str]]]) -> Dict[str, Any]:
    """Collate :class:`SkipUnreadable` items: the readable ones as a batch, the others as failures.

    Returns:
        ``dict(data=collated batch or None, indices=[positions read], failed=[(position, error)])``.
    """
    ok = [(i, item) for i, item, _ in batch if item is not None]
    return dict(data=pseudo_collate([item for _, item in ok]) if ok else None, indices=[i for i, _ in ok],
                failed=[(i, err) for i, item, err in batch if item is None])


def pool_loader(dataset: Any, batch_size: int, num_workers: int = 0) -> DataLoader:
    """A dataloader over ``dataset`` in order, skipping (and reporting) unreadable images."""
    return DataLoader(SkipUnreadable(dataset), batch_size=batch_size, num_workers=num_workers, shuffle=False,
                      collate_fn=collate_skipping)
