"""The training set of semi-supervised AL: the labeled images and the unlabeled rest of the pool,
mixed in every batch at a fixed ratio."""
from __future__ import annotations

import json
from typing import Any, Iterator, List, Optional, Sequence

import torch
from mmdet.registry import DATA_SAMPLERS, DATASETS
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.structures import InstanceData
from torch.utils.data import Sampler


def is_labeled(samples: Sequence) -> List[bool]:
    """The ``labeled`` flag :class:`SemiSupervisedSubset` puts in each sample's metainfo (samples
    without it, from any other dataset, are labeled)."""
    return [bool(s.metainfo.get('labeled', True)) for s in samples]


@DATASETS.register_module()
class SemiSupervisedSubset:
    """Items ``[0, L)`` are the labeled pool images (the dataset's own pipeline, annotations
    included); items ``[L, N)`` the unlabeled rest, through ``unlabeled_dataset`` (the same pool
    with a pipeline that needs no annotations) with their annotations dropped. Every item's
    sample gets ``labeled`` in its metainfo.

    Args:
        dataset: The pool (dataset or config) with the training pipeline.
        indices_file: JSON whose ``"indices"`` are the labeled pool indices.
        unlabeled_dataset: The same pool with the unlabeled pipeline; defaults to ``dataset``.
        unlabeled_views: Augmented views per unlabeled item (MixMatch's K); with K > 1 the item's
            ``inputs`` are stacked ``[K, ...]``.
    """

    def __init__(self, dataset: Any, indices_file: str, unlabeled_dataset: Any = None,
                 unlabeled_views: int = 1) -> None:
        self.dataset: Any = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.unlabeled_dataset: Any
        if unlabeled_dataset is None:
            self.unlabeled_dataset = self.dataset
        else:
            self.unlabeled_dataset = (DATASETS.build(unlabeled_dataset) if isinstance(unlabeled_dataset, dict)
                                      else unlabeled_dataset)
        if len(self.unlabeled_dataset) != len(self.dataset):
            raise ValueError('SemiSupervisedSubset: dataset and unlabeled_dataset must be the same pool, got '
                             f'{len(self.dataset)} and {len(self.unlabeled_dataset)} images.')
        with open(indices_file) as f:
            self.labeled = [int(i) for i in json.load(f)['indices']]
        chosen = set(self.labeled)
        self.unlabeled = [i for i in range(len(self.dataset)) if i not in chosen]
        self.unlabeled_views = int(unlabeled_views)

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    @property
    def num_labeled(self) -> int:
        return len(self.labeled)

    def full_init(self) -> None:
        for d in (self.dataset, self.unlabeled_dataset):
            if hasattr(d, 'full_init'):
                d.full_init()

    def __len__(self) -> int:
        return len(self.labeled) + len(self.unlabeled)

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self._pool_index(idx))

    def _pool_index(self, idx: int) -> int:
        return self.labeled[idx] if idx < len(self.labeled) else self.unlabeled[idx - len(self.labeled)]

    def __getitem__(self, idx: int) -> dict:
        index = self._pool_index(idx)
        if idx < len(self.labeled):
            item = self.dataset[index]
            item['data_samples'].set_metainfo(dict(labeled=True))
            return item
        views = [self.unlabeled_dataset[index] for _ in range(self.unlabeled_views)]
        item = views[0]
        sample = item['data_samples']
        for key in ('gt_instances', 'ignored_instances'):  # never train on a pool label
            if key in sample:
                setattr(sample, key, InstanceData())
        if 'gt_label' in sample:
            del sample.gt_label
        sample.set_metainfo(dict(labeled=False))
        if self.unlabeled_views > 1:
            item['inputs'] = torch.stack([v['inputs'] for v in views])
        return item


@DATA_SAMPLERS.register_module()
class LabeledRatioSampler(Sampler):
    """An infinite sampler whose every batch holds ``round(labeled_ratio * batch_size)`` labeled
    items (at least one while there are any) and unlabeled ones for the rest, each kind drawn
    without replacement and reshuffled every pass. Each rank draws its own stream.

    Args:
        dataset: A :class:`SemiSupervisedSubset`.
        batch_size: The dataloader's batch size.
        labeled_ratio: Share of labeled items per batch.
        seed: Random seed (synchronised over ranks when None).
    """

    def __init__(self, dataset: SemiSupervisedSubset, batch_size: int, labeled_ratio: float = 0.5,
                 seed: Optional[int] = None) -> None:
        if not 0 < labeled_ratio <= 1:
            raise ValueError(f'LabeledRatioSampler: labeled_ratio must lie in (0, 1], got {labeled_ratio}.')
        self.num_labeled = dataset.num_labeled
        self.num_unlabeled = len(dataset) - self.num_labeled
        self.batch_size = batch_size
        per_batch = round(labeled_ratio * batch_size) if self.num_unlabeled else batch_size
        self.per_batch = min(max(per_batch, 1), batch_size) if self.num_labeled else 0
        rank, _ = get_dist_info()
        self.seed = (sync_random_seed() if seed is None else seed) + rank
        self.size = len(dataset)

    def _stream(self, count: int, offset: int, generator: torch.Generator) -> Iterator[int]:
        while True:
            yield from (torch.randperm(count, generator=generator) + offset).tolist()

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        empty: Iterator[int] = iter(())
        labeled = self._stream(self.num_labeled, 0, generator) if self.num_labeled else empty
        unlabeled = self._stream(self.num_unlabeled, self.num_labeled, generator) if self.num_unlabeled else empty
        while True:
            for _ in range(self.per_batch):
                yield next(labeled)
            for _ in range(self.batch_size - self.per_batch):
                yield next(unlabeled)

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """An infinite stream has no epochs (kept for mmengine's DistSamplerSeedHook)."""
