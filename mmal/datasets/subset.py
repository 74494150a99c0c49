"""Restrict any dataset (VOCDataset, a ConcatDataset of VOC07+12, ...) to given pool indices."""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from mmdet.registry import DATASETS


@DATASETS.register_module()
class IndexSubset:
    """The items ``indices`` of ``dataset``, in that order.

    Args:
        dataset: The whole pool: a dataset or its config.
        indices: Pool indices to keep.
        indices_file: Or a JSON file whose ``"indices"`` are kept (keeps long lists out of configs).
    """

    def __init__(self, dataset: Any, indices: Optional[Sequence[int]] = None,
                 indices_file: Optional[str] = None) -> None:
        if (indices is None) == (indices_file is None):
            raise ValueError('IndexSubset takes exactly one of `indices` and `indices_file`.')
        if indices_file is not None:
            with open(indices_file) as f:
                indices = json.load(f)['indices']
        assert indices is not None
        self.dataset: Any = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.indices = [int(i) for i in indices]
        if self.indices and not 0 <= min(self.indices) <= max(self.indices) < len(self.dataset):
            raise IndexError(f'IndexSubset: indices must lie in [0, {len(self.dataset)}), '
                             f'got {min(self.indices)}..{max(self.indices)}.')

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.indices[idx])

    def __getitem__(self, idx: int):
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)
