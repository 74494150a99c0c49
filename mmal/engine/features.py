"""Label-free features for the selectors that read features (TypiClust, ProbCover, k-center, the
coverage switch): ``active_learning.features = dict(source=...)``.

A cold start has few labels, so the features of a model trained on them are the one representation
it lacks; TypiClust and ProbCover owe their published low-budget gains to a self-supervised
representation of the whole pool. The sources:

- ``'model'`` (default): the cycle's model's features, as the adapter gives them.
- ``'self_supervised'``: SimCLR (:mod:`mmal.models.simclr`) trained on the pool's own images,
  once per pool: the result is cached under a key made of the pool's pixels and every setting that
  decides the features (content-addressed), so every trial, cycle, method and rerun on the same pool
  reads it (``cache_dir``, default ``~/.cache/mmal/features``; a labeling project keeps its own).
- ``'checkpoint'``: the embedding (last stage, globally average-pooled) of a pretrained backbone
  the user already has (mmpretrain, mmdet or torchvision-style ResNet weights), loaded under the
  checkpoint trust policy (:mod:`mmal.checkpoint`).

Both read each pool image through the pool's own pipeline (the scoring pipeline: classification or
detection alike), resized to ``image_size`` squared: for a detection pool this is an image-level
embedding of the same kind. Unreadable images are left out and reported like the scoring pass's.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as nnf
from mmengine.dist import barrier, get_rank
from torch import Tensor

from ..checkpoint import load_local_checkpoint
from ..datasets.subset import IndexSubset
from ..datasets.unreadable import pool_loader
from ..errors import UserError
from ..fileio import check_output_folder, commit, temp_path
from ..registry import FEATURE_SOURCES

#: Where the features of a pool are cached when neither the config nor the caller names a folder.
DEFAULT_CACHE = osp.join('~', '.cache', 'mmal', 'features')


@dataclass
class PoolFeatures:
    """The label-free features of every image of a pool.

    Attributes:
        features: ``[N, C]`` float, one row per pool index (zeros where unreadable).
        unreadable: ``{pool index: error}`` of the images that could not be read.
        key: The content address (pool pixels + settings) the features are cached under.
        seconds: The process's CPU seconds the features took when they were computed.
    """

    features: Tensor
    unreadable: Dict[int, str]
    key: str
    seconds: float

    def summary(self, source: str) -> Dict[str, Any]:
        """What a selection record keeps of them."""
        return dict(source=source, key=self.key[:16], dim=int(self.features.shape[1]),
                    seconds=round(self.seconds, 1))


def read_pool(pool: Any, size: int, batch_size: int = 64) -> Tuple[Tensor, Dict[int, str]]:
    """Every image of ``pool`` through its pipeline, resized to ``size`` x ``size``.

    Returns:
        ``[N, 3, size, size]`` uint8 (grey images repeated to 3 channels; zeros where unreadable) and
        ``{pool index: error}`` of the unreadable ones.
    """
    images = torch.zeros(len(pool), 3, size, size, dtype=torch.uint8)
    unreadable: Dict[int, str] = {}
    for batch in pool_loader(IndexSubset(pool, indices=list(range(len(pool)))), batch_size):
        for position, err in batch['failed']:
            unreadable[position] = err
        if batch['data'] is None:
            continue
        for position, image in zip(batch['indices'], batch['data']['inputs']):
            x = image.float()[None]
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
            x = nnf.interpolate(x, size=(size, size), mode='bilinear', antialias=True, align_corners=False)
            images[position] = x[0].round().clamp(0, 255).to(torch.uint8)
    return images, unreadable


class FeatureSource:
    """A label-free embedding of a pool's images, computed once per pool and cached.

    Args:
        image_size: Side of the square each image is resized to.
        batch_size: Images per batch when reading and embedding.
        cache_dir: Folder of the cache (default: the one the caller gives, else ``~/.cache/mmal/features``).
        seed: Seed of anything random in computing the features.
    """

    #: The ``source`` name of the config.
    name = ''

    def __init__(self, image_size: int = 32, batch_size: int = 64, cache_dir: Optional[str] = None,
                 seed: int = 0) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f'image_size must be an integer >= 8, got {image_size!r}')
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(f'batch_size must be an integer >= 2, got {batch_size!r}')
        self.image_size, self.batch_size, self.cache_dir, self.seed = image_size, batch_size, cache_dir, seed
        self._known: Dict[int, Tuple[Any, PoolFeatures]] = {}  # id -> (the pool, kept alive so no id is reused)

    def settings(self) -> Dict[str, Any]:
        """Every setting that decides the features (part of the cache key)."""
        return dict(source=self.name, image_size=self.image_size, seed=self.seed)

    def compute(self, images: Tensor, readable: Tensor) -> Tensor:
        """``[N, C]`` features of ``[N, 3, S, S]`` uint8 images (``readable``: ``[N]`` bool)."""
        raise NotImplementedError

    def of(self, pool: Any, cache_dir: Optional[str] = None) -> PoolFeatures:
        """The features of ``pool``: from this process's memory, the cache, or computed and cached.

        Every rank of a distributed run calls it; each reads the pool, rank 0 computes what the
        cache lacks and writes it (the others compute the same and read rank 0's file).

        Args:
            pool: The pool dataset (the scoring pipeline; ``pool[i]['inputs']`` is an image tensor).
            cache_dir: Cache folder of the run (``cache_dir`` of the config wins).
        """
        if id(pool) in self._known:
            return self._known[id(pool)][1]
        images, unreadable = read_pool(pool, self.image_size, self.batch_size)
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode())
        digest.update(images.numpy().tobytes())
        key = digest.hexdigest()
        folder = osp.expanduser(self.cache_dir or cache_dir or DEFAULT_CACHE)
        path = osp.join(folder, f'{self.name}_{key[:32]}.pt')
        found = self._load(path)
        if found is None:
            check_output_folder(folder, 'the feature cache (active_learning.features.cache_dir)')  # before the work
            readable = torch.ones(len(pool), dtype=torch.bool)
            readable[list(unreadable)] = False
            start = time.process_time()
            features = self.compute(images, readable).float()
            features[~readable] = 0
            found = PoolFeatures(features=features, unreadable=unreadable, key=key,
                                 seconds=time.process_time() - start)
            if get_rank() == 0:
                self._save(found, path)
            barrier()
            found = self._load(path) or found
        self._known[id(pool)] = (pool, found)
        return found

    @staticmethod
    def _load(path: str) -> Optional[PoolFeatures]:
        if not osp.isfile(path):
            return None
        try:
            saved = torch.load(path, map_location='cpu', weights_only=True)
            return PoolFeatures(features=saved['features'], key=str(saved['key']), seconds=float(saved['seconds']),
                                unreadable={int(i): str(e) for i, e in saved['unreadable']})
        except Exception:  # noqa: BLE001 - a damaged cache entry is computed again
            return None

    @staticmethod
    def _save(found: PoolFeatures, path: str) -> None:
        tmp = None
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            tmp = temp_path(path)
            torch.save(dict(features=found.features, key=found.key, seconds=found.seconds,
                            unreadable=[[i, e] for i, e in found.unreadable.items()]), tmp)
            commit(tmp, path)
        except OSError as err:
            if tmp is not None and osp.exists(tmp):
                os.unlink(tmp)
            raise UserError(f'the feature cache {path} cannot be written ({err.strerror}); set '
                            'active_learning.features.cache_dir to a folder you can write.') from None


def _images_loader(images: Tensor, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(_Images(images), batch_size=min(batch_size, len(images)), shuffle=True,
                                       drop_last=True, generator=generator, collate_fn=_stack)


class _Images(torch.utils.data.Dataset):
    metainfo: Dict[str, Any] = {}

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def _stack(batch: List[Tensor]) -> Dict[str, Tensor]:
    return dict(inputs=torch.stack(batch))


@FEATURE_SOURCES.register_module(name='self_supervised')
class SelfSupervisedFeatures(FeatureSource):
    """SimCLR trained on the pool's own (readable) images by mmengine's ``Runner``.

    Args:
        epochs: Training epochs over the pool.
        lr: SGD learning rate (cosine schedule, momentum 0.9, weight decay 5e-4).
        backbone: Backbone config (mmdet's ``MODELS``); default a CIFAR-stem ResNet-18 of width 16.
        in_channels: Channels of its last stage.
        temperature: NT-Xent temperature.
        crop_min: Least crop area of a view.
        jitter: Colour-jitter strength of a view (0: none).
        grey: Probability of a grey view.
        flip: Flip half the views horizontally; off by default, since a mirror image is another class in
            digits, text or the toy sets' oriented stripes (turn it on for natural photographs).
        projection_dim: Projection head output size.
        **kwargs: :class:`FeatureSource`'s ``image_size``, ``batch_size``, ``cache_dir``, ``seed``.
    """

    name = 'self_supervised'

    def __init__(self, epochs: int = 30, lr: float = 0.3, backbone: Optional[dict] = None, in_channels: int = 128,
                 temperature: float = 0.2, crop_min: float = 0.3, jitter: float = 0.4, grey: float = 0.2,
                 flip: bool = False, projection_dim: int = 64, **kwargs: Any) -> None:
        super().__init__(**{'batch_size': 128, **kwargs})
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f'epochs must be an integer >= 1, got {epochs!r}')
        self.epochs, self.lr = epochs, lr
        backbone = backbone or dict(type='CIFARResNet', depth=18, base_channels=16, out_indices=(3, ))
        self.model_cfg: Dict[str, Any] = dict(backbone=backbone, in_channels=in_channels, temperature=temperature,
                                              crop_min=crop_min, jitter=jitter, grey=grey, flip=flip,
                                              projection_dim=projection_dim)

    def settings(self) -> Dict[str, Any]:
        return dict(super().settings(), epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, **self.model_cfg)

    def compute(self, images: Tensor, readable: Tensor) -> Tensor:
        from mmengine.runner import Runner

        from ..models.simclr import SimCLR
        train = images[readable]
        if len(train) < 2:
            raise UserError('self-supervised features need at least 2 readable pool images; check the pool.')
        work_dir = tempfile.mkdtemp(prefix='mmal_simclr_')
        try:
            torch.manual_seed(self.seed)
            runner = Runner(model=SimCLR(**self.model_cfg), work_dir=work_dir, default_scope='mmdet',
                            train_dataloader=_images_loader(train, self.batch_size, self.seed),
                            train_cfg=dict(by_epoch=True, max_epochs=self.epochs),
                            optim_wrapper=dict(optimizer=dict(type='SGD', lr=self.lr, momentum=0.9,
                                                              weight_decay=5e-4)),
                            param_scheduler=dict(type='CosineAnnealingLR', by_epoch=True, T_max=self.epochs),
                            default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=50)),
                            randomness=dict(seed=self.seed), log_level='WARNING')
            runner.train()
            model = runner.model
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        return embed(model.embed, images, self.batch_size)


def embed(encoder: Any, images: Tensor, batch_size: int) -> Tensor:
    """``encoder`` over ``images`` in batches, in eval mode and without gradients."""
    module = getattr(encoder, '__self__', None)
    was_training = bool(getattr(module, 'training', False))
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            return torch.cat([encoder(images[i:i + batch_size]).float().cpu()
                              for i in range(0, len(images), batch_size)])
    finally:
        if module is not None and was_training:
            module.train()


@FEATURE_SOURCES.register_module(name='checkpoint')
class CheckpointFeatures(FeatureSource):
    """The embedding of a pretrained backbone: its last stage, globally average-pooled.

    Args:
        checkpoint: The weights (a ``state_dict`` or mmengine checkpoint; keys of the backbone
            itself, under ``backbone.`` (mmpretrain, mmdet), or torchvision's ResNet keys).
        backbone: Backbone config (mmdet's ``MODELS``) the weights fit; default ResNet-50.
        mean: Per-channel mean of the pixels the weights were trained on (RGB, 0-255).
        std: Per-channel spread.
        to_rgb: Reverse the channels first (the pool's pipeline reads BGR, as mmcv does).
        **kwargs: :class:`FeatureSource`'s ``image_size`` (default 224), ``batch_size``, ``cache_dir``.
    """

    name = 'checkpoint'

    def __init__(self, checkpoint: str, backbone: Optional[dict] = None,
                 mean: Tuple[float, float, float] = (123.675, 116.28, 103.53),
                 std: Tuple[float, float, float] = (58.395, 57.12, 57.375), to_rgb: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**{'image_size': 224, **kwargs})
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError(f'checkpoint must be the path of the weights, got {checkpoint!r}')
        self.checkpoint = checkpoint
        self.backbone = backbone or dict(type='ResNet', depth=50, out_indices=(3, ))
        self.mean, self.std, self.to_rgb = list(mean), list(std), to_rgb

    def settings(self) -> Dict[str, Any]:
        path = osp.expanduser(self.checkpoint)
        stamp = [osp.getsize(path), os.stat(path).st_mtime_ns] if osp.isfile(path) else None
        return dict(super().settings(), checkpoint=osp.abspath(path), stamp=stamp, backbone=self.backbone,
                    mean=self.mean, std=self.std, to_rgb=self.to_rgb)

    def compute(self, images: Tensor, readable: Tensor) -> Tensor:
        from mmdet.registry import MODELS
        backbone = MODELS.build(self.backbone)
        load_backbone_weights(backbone, self.checkpoint)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)

        def encode(batch: Tensor) -> Tensor:
            x = batch.float()
            x = x.flip(1) if self.to_rgb else x
            return backbone((x - mean) / std)[-1].mean(dim=(2, 3))

        backbone.eval()
        return embed(encode, images, self.batch_size)


def load_backbone_weights(backbone: torch.nn.Module, path: str) -> None:
    """Load ``path`` into ``backbone``: its own keys, or those under ``backbone.``; the head's are ignored.

    Raises:
        UserError: The file cannot be loaded (see :func:`~mmal.checkpoint.load_local_checkpoint`), or
            it does not hold the backbone's weights (names the first missing one).
    """
    saved = load_local_checkpoint(path, map_location='cpu')
    state = saved.get('state_dict', saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise UserError(f'{path} holds no state_dict; pass a checkpoint of the backbone\'s weights.')
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith('num_batches_tracked')]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise UserError(f'{path} does not fit the backbone {type(backbone).__name__}: {len(missing)} of its '
                        f'{len(own)} weights are missing and {len(wrong)} have another shape (e.g. {first!r}); '
                        'set features.backbone to the architecture the weights were trained with.')
    backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def build_features(cfg: Optional[dict], where: str = 'active_learning.') -> Optional[FeatureSource]:
    """The feature source of ``features=dict(source=..., ...)``; None for ``'model'`` (or no config).

    Raises:
        UserError: Not a dict, an unknown source, or a bad argument (one sentence).
    """
    if cfg is None:
        return None
    sources = ['model', *sorted(FEATURE_SOURCES.module_dict)]
    if not isinstance(cfg, dict) or cfg.get('source') not in sources:
        raise UserError(f"{where}features must be dict(source=...) with source one of {sources}, e.g. "
                        f"dict(source='self_supervised'), got {cfg!r}.")
    args = {k: v for k, v in cfg.items() if k != 'source'}
    if cfg['source'] == 'model':
        if args:
            raise UserError(f"{where}features source 'model' takes no options, got {sorted(args)}.")
        return None
    try:
        return FEATURE_SOURCES.get(cfg['source'])(**args)
    except (TypeError, ValueError) as err:
        raise UserError(f'{where}features {cfg!r}: {err}; see mmal/engine/features.py for the options.') from None
