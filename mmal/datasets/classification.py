"""Classification datasets in their standard on-disk formats, plus the study's duplication wrapper.

- ``CIFAR10`` / ``CIFAR100``: the python pickle batches (``cifar-10-batches-py``, ``cifar-100-python``).
- ``ClassFolderDataset``: class-per-folder images (users' own data), with an optional fixed,
  seeded per-class train/test split; ``Caltech101`` and ``Caltech256`` are its two study layouts.
- ``DuplicatedDataset``: every sample k times (CIFAR-10x2, x5): same content, distinct pool indices.

Nothing is downloaded at run time; ``tools/download_data.sh`` fetches the public archives.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import random
from typing import List, NoReturn, Optional, Sequence

import numpy as np
from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset, RepeatDataset

from ..errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
SPLITS = ('train', 'test')


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches' content only: dicts, lists, bytes, numbers and numpy arrays.

    Any other global (a function, a class) is refused, so a crafted batch file cannot run code
    (``_codecs.encode`` is how protocol-2 pickles written by Python 3 spell ``bytes``).
    """

    ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
               ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
               ('numpy._core.multiarray', 'scalar'), ('_codecs', 'encode')}  # bytes in protocol-2 pickles

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f'{module}.{name} is not allowed')
        return super().find_class(module, name)


class _CIFAR(BaseDataset):
    """The python version of CIFAR: pickled batches of ``data`` (N x 3072 uint8, RGB planes) and labels.

    Args:
        data_root: The folder holding the batches' folder (e.g. ``data/cifar10``).
        split: ``'train'`` or ``'test'``.
        **kwargs: ``pipeline``, ``test_mode``, ... of mmengine's ``BaseDataset``.
    """

    FOLDER: str = ''
    FILES: dict = {}
    META: tuple = ('', b'')  # (meta file, class-name key)
    LABEL_KEY: bytes = b'labels'
    NAME: str = ''
    URL: str = 'https://www.cs.toronto.edu/~kriz/cifar.html'

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split not in SPLITS:
            raise UserError(f'{self.NAME}: split must be one of {SPLITS}, got {split!r}.')
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    @classmethod
    def layout_hint(cls) -> str:
        files = ','.join(sum(cls.FILES.values(), []) + [cls.META[0]])
        return (f'<data_root>/{cls.FOLDER}/{{{files}}} (the "python version" of {cls.NAME} from {cls.URL}; '
                f'`bash tools/download_data.sh {cls.NAME.lower()}` fetches it)')

    def _read(self, name: str) -> dict:
        path = osp.join(self.data_root, self.FOLDER, name)
        if not osp.isfile(path):
            raise UserError(f'{path} is missing; {self.NAME} is expected as {self.layout_hint()}.')
        try:
            with open(path, 'rb') as f:
                return _ArraysOnlyUnpickler(f, encoding='bytes').load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise UserError(f'{path} is not a CIFAR batch of arrays ({err}); it was not loaded, since unpickling '
                            f'anything else could run code: restore the file ({self.layout_hint()}).') from None

    def load_data_list(self) -> List[dict]:
        meta_file, names_key = self.META
        meta = self._read(meta_file)
        names = meta.get(names_key) if isinstance(meta, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, bytes) for n in names):
            self._refuse(meta_file, f'no list of class names under {names_key!r}')
        self._metainfo['classes'] = tuple(n.decode() for n in names)
        data_list: List[dict] = []
        for name in self.FILES[self.split]:
            data, labels = self._batch(name, len(names))
            images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            for image, label in zip(images, labels):
                data_list.append(dict(img=np.ascontiguousarray(image), gt_label=int(label),
                                      img_id=f'{self.split}_{len(data_list)}'))
        return data_list

    def _batch(self, name: str, num_classes: int) -> tuple:
        """A batch's ``data`` (N x 3072 uint8) and labels (N integers below ``num_classes``), checked."""
        batch = self._read(name)
        data = batch.get(b'data') if isinstance(batch, dict) else None
        labels = batch.get(self.LABEL_KEY) if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            self._refuse(name, "no b'data' array of N x 3072 bytes (32 x 32 RGB planes)")
        if not isinstance(labels, list) or len(labels) != len(data):
            self._refuse(name, f'no list of {len(data)} labels under {self.LABEL_KEY!r}')
        if not all(isinstance(v, int) and 0 <= v < num_classes for v in labels):
            self._refuse(name, f'a label outside 0..{num_classes - 1}')
        return data, labels

    def _refuse(self, name: str, what: str) -> NoReturn:
        path = osp.join(self.data_root, self.FOLDER, name)
        raise UserError(f'{path} is not a {self.NAME} batch: it has {what}; restore the file ({self.layout_hint()}).')


@DATASETS.register_module()
class CIFAR10(_CIFAR):
    """CIFAR-10 from ``<data_root>/cifar-10-batches-py`` (see :class:`_CIFAR`)."""

    FOLDER = 'cifar-10-batches-py'
    FILES = {'train': [f'data_batch_{i}' for i in range(1, 6)], 'test': ['test_batch']}
    META = ('batches.meta', b'label_names')
    LABEL_KEY = b'labels'
    NAME = 'CIFAR10'


@DATASETS.register_module()
class CIFAR100(_CIFAR):
    """CIFAR-100 (fine labels) from ``<data_root>/cifar-100-python`` (see :class:`_CIFAR`)."""

    FOLDER = 'cifar-100-python'
    FILES = {'train': ['train'], 'test': ['test']}
    META = ('meta', b'fine_label_names')
    LABEL_KEY = b'fine_labels'
    NAME = 'CIFAR100'


@DATASETS.register_module()
class ClassFolderDataset(BaseDataset):
    """Images in one folder per class: ``<data_root>/<data_prefix>/<class>/<image>``.

    Classes are the sorted sub-folder names (minus ``exclude``). With ``split=None`` every image is
    used (point it at your own ``train/`` and ``test/`` folders); with ``'train'``/``'test'`` each
    class's sorted file list is shuffled by a generator seeded with ``seed`` and the class name, and
    its first ``round(test_ratio * n)`` images are the test split: fixed for a given seed, whatever
    the other classes hold.

    Args:
        data_root: Dataset root.
        data_prefix: Sub-folder of ``data_root`` holding the class folders.
        split: ``None``, ``'train'`` or ``'test'``.
        test_ratio: Share of each class held out for ``'test'``.
        seed: Seed of the split.
        exclude: Class folders to leave out.
        **kwargs: ``pipeline``, ``test_mode``, ... of mmengine's ``BaseDataset``.
    """

    NAME = 'image folder'
    SOURCE = ''

    def __init__(self, data_root: str, data_prefix: str = '', split: Optional[str] = None,
                 test_ratio: float = 0.2, seed: int = 0, exclude: Sequence[str] = (), **kwargs) -> None:
        if split is not None and split not in SPLITS:
            raise UserError(f'{type(self).__name__}: split must be None or one of {SPLITS}, got {split!r}.')
        if not 0 < test_ratio < 1:
            raise UserError(f'{type(self).__name__}: test_ratio must lie in (0, 1), got {test_ratio}.')
        self.folder, self.split, self.test_ratio, self.seed = data_prefix, split, test_ratio, seed
        self.exclude = set(exclude)
        super().__init__(data_root=data_root, **kwargs)

    @classmethod
    def layout_hint(cls) -> str:
        return '<data_root>/<data_prefix>/<class name>/<image files>' + (f' ({cls.SOURCE})' if cls.SOURCE else '')

    def load_data_list(self) -> List[dict]:
        root = osp.join(self.data_root, self.folder)
        classes = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)) and d not in self.exclude) \
            if osp.isdir(root) else []
        if not classes:
            raise UserError(f'{root} holds no class folders; {self.NAME} is expected as {self.layout_hint()}.')
        self._metainfo['classes'] = tuple(classes)
        data_list = []
        for label, name in enumerate(classes):
            files = sorted(f for f in os.listdir(osp.join(root, name)) if f.lower().endswith(IMAGE_EXTENSIONS))
            if self.split is not None:
                random.Random(f'{self.seed}/{name}').shuffle(files)
                n_test = round(self.test_ratio * len(files))
                files = files[:n_test] if self.split == 'test' else files[n_test:]
            data_list += [dict(img_path=osp.join(root, name, f), gt_label=label, img_id=f'{name}/{f}')
                          for f in sorted(files)]
        return data_list


@DATASETS.register_module()
class Caltech101(ClassFolderDataset):
    """Caltech-101 as extracted: ``<data_root>/101_ObjectCategories/<class>/image_NNNN.jpg``.

    101 classes (``BACKGROUND_Google`` left out); 30 % of each class is the test split (the study's
    pool had 6,084 images, about 70 % of the 8,677).
    """

    NAME = 'Caltech-101'
    SOURCE = 'caltech-101.zip from https://data.caltech.edu/records/mzrjq-6wc02; ' \
             '`bash tools/download_data.sh caltech101` fetches it'

    def __init__(self, data_root: str, data_prefix: str = '101_ObjectCategories', split: Optional[str] = 'train',
                 test_ratio: float = 0.3, seed: int = 0, exclude: Sequence[str] = ('BACKGROUND_Google', ),
                 **kwargs) -> None:
        super().__init__(data_root, data_prefix, split, test_ratio, seed, exclude, **kwargs)


@DATASETS.register_module()
class Caltech256(ClassFolderDataset):
    """Caltech-256 as extracted: ``<data_root>/256_ObjectCategories/NNN.<class>/NNN_NNNN.jpg``.

    All 257 folders (``257.clutter`` included: the study's 30,607 images are the whole set); 20 %
    of each class is the test split.
    """

    NAME = 'Caltech-256'
    SOURCE = '256_ObjectCategories.tar from https://data.caltech.edu/records/nyy15-4j048; ' \
             '`bash tools/download_data.sh caltech256` fetches it'

    def __init__(self, data_root: str, data_prefix: str = '256_ObjectCategories', split: Optional[str] = 'train',
                 test_ratio: float = 0.2, seed: int = 0, exclude: Sequence[str] = (), **kwargs) -> None:
        super().__init__(data_root, data_prefix, split, test_ratio, seed, exclude, **kwargs)


@DATASETS.register_module()
class DuplicatedDataset(RepeatDataset):
    """Every sample of ``dataset`` ``times`` times (the study's CIFAR-10x2 and x5).

    Index ``c * n + i`` is copy ``c`` of sample ``i``: the same content under a distinct pool index
    and image id (``<id>#<c>``), so an acquisition can pick several copies.

    Args:
        dataset: The dataset or its config.
        times: Copies of every sample.
        lazy_init: As mmengine's ``RepeatDataset``.
    """

    def __init__(self, dataset, times: int, lazy_init: bool = False) -> None:
        if int(times) < 1:
            raise UserError(f'DuplicatedDataset: times must be a positive integer, got {times}.')
        super().__init__(dataset, times, lazy_init)

    def get_data_info(self, idx: int) -> dict:
        info = dict(super().get_data_info(idx))
        info['img_id'] = f'{info.get("img_id", idx % self._ori_len)}#{idx // self._ori_len}'
        return info
