"""Every config of mmdet's installed model zoo, built tiny, against every acquisition method.

    mmal sweep                     # all configs; writes docs/zoo_sweep.json
    mmal sweep --only retinanet    # configs whose path holds a pattern (no file written)
    mmal sweep --write             # put the counts of docs/zoo_sweep.json into docs/detectors.md

For each ``.py`` under mmdet's ``.mim/configs`` (``_base_`` folders excepted), in order:

1. load it; a config that is not a detector's (tracking, ReID, video segmentation) is counted as such;
2. shrink the model: the backbone becomes a ResNet-18 feeding the neck's input levels (a model
   without a neck, or whose neck cannot take it, keeps its own backbone), every ``num_classes``
   becomes 5, at most 100 queries, score thresholds 0 (an untrained model scores below the test
   thresholds: it would predict no box to compare), no pretrained weights;
   build it, initialise it and add a seeded perturbation to every weight (random init alone makes
   queries and boxes alike where mmdet zero-initialises refinement layers: it stands in for training);
3. predict on a padded batch of two images of different sizes (about 100 px; about 400 px for a model
   that cannot run on so small an image); what mmdet itself cannot build or
   predict here (text encoders, weights from the internet, CUDA-only ops) is skipped with the error;
4. for every method of :mod:`mmal.zoo.matrix`: either mmal's pre-training check
   (``AcquisitionService.check_model``) refuses it in one sentence, or the boxes, labels and scores
   the adapter works on equal ``predict``'s and the method's outputs are computed and finite.
   Anything else (a check that passes and a scoring that then fails, boxes that differ) is a failure.

Configs whose shrunk model is the same are run once. ``tests/test_zoo_sweep.py`` runs a fast subset
in the default suite and the whole sweep as a slow test, which also checks that docs/detectors.md holds the
counts of the committed record.
"""
from __future__ import annotations

import copy
import glob
import hashlib
import json
import logging
import os
import os.path as osp
import re
import time
import traceback
import warnings
from collections import Counter, defaultdict
from typing import Any, Dict, List, Optional

from . import matrix

#: The record of the last whole sweep, relative to a checkout's root.
RECORD = 'docs/zoo_sweep.json'
START, END = '<!-- zoo-sweep:start -->', '<!-- zoo-sweep:end -->'
RESNET18 = (64, 128, 256, 512)
SIZES = ((96, 128), (128, 80))  # (height, width) of the two images of the batch
LARGE_SIZES = ((416, 384), (384, 320))  # for a model that cannot run on maps as small (3x3 deformable convs)
NUM_CLASSES = 5
METHODS = matrix.METHODS


def zoo_root() -> str:
    """mmdet's installed config folder."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')


def zoo_configs(patterns: Optional[List[str]] = None) -> List[str]:
    """Every config of the zoo (relative paths, sorted), or those holding one of ``patterns``."""
    root = zoo_root()
    found = sorted(osp.relpath(p, root) for p in glob.glob(osp.join(root, '**', '*.py'), recursive=True)
                   if '_base_' not in osp.relpath(p, root).split(os.sep))
    return [p for p in found if not patterns or any(pattern in p for pattern in patterns)]


def _walk(node: Any, visit) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, visit)


def tiny_model(model: dict, resnet18: bool = True) -> dict:
    """The model config shrunk for the sweep (see the module docstring); without ``resnet18`` the
    backbone is the config's own (for a neck that cannot take a ResNet-18's levels)."""
    model = copy.deepcopy(model)

    def shrink(node: dict) -> None:
        if isinstance(node.get('num_classes'), int) and node['num_classes'] > 1:  # (an RPN keeps its 1)
            node['num_classes'] = NUM_CLASSES
        if node.get('type') in ('SyncBN', 'MMSyncBN'):  # no process group on one CPU: plain BN predicts the same
            node['type'] = 'BN'
        if isinstance(node.get('num_cp'), int):  # activation checkpointing (needs fairscale): memory only
            node['num_cp'] = 0
        for key in ('score_thr', 'conf_thr'):  # an untrained model scores below the test thresholds: keep
            if isinstance(node.get(key), float):  # its boxes, or every comparison would be of empty sets
                node[key] = 0.0
        if isinstance(node.get('num_queries'), int) and node['num_queries'] > 100:  # DINO's top-k of encoder
            node['num_queries'] = 100  # tokens needs fewer queries than a small image has tokens
        if isinstance(node.get('init_cfg'), dict) and node['init_cfg'].get('type') == 'Pretrained':
            node['init_cfg'] = None
        if isinstance(node.get('init_cfg'), list):
            node['init_cfg'] = [c for c in node['init_cfg']
                                if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
        if 'pretrained' in node and isinstance(node['pretrained'], str):
            node['pretrained'] = None

    _walk(model, shrink)
    neck = model.get('neck')
    first: Any = neck[0] if isinstance(neck, (list, tuple)) and neck else neck
    channels = first.get('in_channels') if isinstance(first, dict) else None
    levels = len(channels) if isinstance(channels, (list, tuple)) else (1 if isinstance(channels, int) else 0)
    if resnet18 and isinstance(model.get('backbone'), dict) and 1 <= levels <= 4:
        model['backbone'] = dict(type='ResNet', depth=18, num_stages=4, out_indices=tuple(range(4 - levels, 4)),
                                 frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                                 style='pytorch', init_cfg=None)
        if isinstance(channels, (list, tuple)):  # in the neck's own order (YOLOv3's lists the deepest first)
            rank = sorted(range(levels), key=lambda i: (channels[i], i))
            new = [0] * levels
            for position, i in enumerate(rank):
                new[i] = RESNET18[4 - levels + position]
            first['in_channels'] = new
        else:
            first['in_channels'] = RESNET18[-1]
    test_cfg = model.get('test_cfg')
    if isinstance(test_cfg, dict) and isinstance(test_cfg.get('rpn'), dict):  # fewer proposals: faster, same code
        test_cfg['rpn'].update(nms_pre=200, max_per_img=50)
    return model


def batch(seed: int = 0, sizes=SIZES) -> dict:
    """Two textured images of different sizes, as a dataloader yields them (the preprocessor pads)."""
    import torch
    from mmdet.structures import DetDataSample
    gen = torch.Generator().manual_seed(seed)
    images: List[Any] = []
    samples: List[Any] = []
    for height, width in sizes:
        low = torch.randint(0, 256, (3, height // 8 + 1, width // 8 + 1), generator=gen).float()
        image = torch.nn.functional.interpolate(low[None], size=(height, width), mode='bilinear')[0]
        images.append((image + torch.randint(-20, 21, image.shape, generator=gen)).clamp(0, 255).to(torch.uint8))
        samples.append(DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                                   scale_factor=(1.0, 1.0), img_id=len(samples),
                                                   img_path=f'sweep_{len(samples)}.jpg',
                                                   border=(0, height, 0, width))))  # (CenterNet's test crop)
    return dict(inputs=images, data_samples=samples)


def perturb(model, seed: int = 0, scale: float = 0.1) -> None:
    """Add ``scale`` x (the tensor's std, or 0.1 where it is constant) of seeded noise to every weight."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            spread = float(param.std()) if param.numel() > 1 else 0.0
            param.add_(torch.randn(param.shape, generator=gen) * scale * (spread if spread > 0 else 0.1))


def one_line(err: BaseException) -> str:
    """An exception as one line (type and the first line of its message)."""
    text = str(err).strip().splitlines()
    if not text:  # a bare assert: where it failed
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = frame.filename.split('site-packages/')[-1]
        return f'{type(err).__name__} in {where}:{frame.lineno} ({(frame.line or "").strip()})'[:300]
    return f'{type(err).__name__}: {text[0]}'[:300]


def build(model_cfg: dict):
    """The shrunk, initialised, perturbed model in eval mode."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(copy.deepcopy(model_cfg)))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    perturb(model)
    return model.eval()


def predicted(model, data: dict) -> list:
    """``model.predict(..., rescale=False)``'s instances of a batch."""
    import torch
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(data), False)
        return [s.pred_instances for s in model.predict(data['inputs'], data['data_samples'], rescale=False)]


def same_instances(ours: list, theirs: list) -> Optional[str]:
    """None when the adapter's detections equal predict's, else what differs."""
    import torch
    for b, (mine, own) in enumerate(zip(ours, theirs)):
        for key in ('bboxes', 'labels', 'scores'):
            a, c = getattr(mine, key), getattr(own, key)
            if a.shape != c.shape or not torch.equal(a, c):
                return f'image {b}: {key} differ ({tuple(a.shape)} against predict\'s {tuple(c.shape)})'
    return None


def check_method(model, method: str, data: dict, theirs: list, compared: Dict[str, Optional[str]]) -> str:
    """``'equal'`` (the adapter reproduces predict and the method's outputs are computed), ``'refused:
    <sentence>'`` or ``'FAILED: <why>'``. ``compared`` keeps the comparison of the adapter's boxes with
    predict's, made once per model: every method's adapter runs the same family with the same settings."""
    import torch

    from mmal.engine import build_method
    from mmal.engine.acquisition import AcquisitionService, build_adapter
    from mmal.errors import UserError
    built = build_method(*METHODS[method])
    service = AcquisitionService(built, progress=False)
    try:
        service.check_model(model)
    except UserError as err:
        sentence = str(err)
        return f'refused: {sentence}' if '\n' not in sentence else f'FAILED: a refusal of several lines: {sentence!r}'
    try:
        adapter = build_adapter(model, built.requires | ({'probs'} if method != 'CoreSet' else set()))
        out = adapter(copy.deepcopy(data))
        if method != 'CoreSet':
            if 'differs' not in compared:
                compared['differs'] = same_instances(adapter.detect(copy.deepcopy(data)), theirs)
            if compared['differs']:
                return f'FAILED: boxes differ from predict: {compared["differs"]}'
        inputs = built.selector.image_inputs(out)
        values = built.scorer(out) if built.scorer is not None else next(iter(inputs.values()))
        if not bool(torch.isfinite(values).all()):
            return 'FAILED: non-finite outputs'
    except Exception as err:  # noqa: BLE001  (the sweep records what failed after the check passed)
        return f'FAILED: passed the check, then {one_line(err)}'
    return 'equal'


def sweep_one(path: str, cache: Dict[str, dict]) -> dict:
    """The record of one config (``cache`` maps a shrunk model to its outcome)."""
    from mmdet.models.detectors import BaseDetector
    from mmdet.registry import MODELS
    from mmengine.config import Config
    record: Dict[str, Any] = dict(config=path)
    try:
        cfg = Config.fromfile(osp.join(zoo_root(), path))
    except Exception as err:  # noqa: BLE001
        return dict(record, status='cannot_build', reason=f'config does not load: {one_line(err)}')
    model_cfg = cfg.get('model')
    kind = MODELS.get(model_cfg.get('type')) if isinstance(model_cfg, dict) else None
    record['detector'] = str(model_cfg.get('type')) if isinstance(model_cfg, dict) else None
    if not (isinstance(kind, type) and issubclass(kind, BaseDetector)):
        return dict(record, status='not_detector', reason=f'its model ({record["detector"]}) is not an mmdet detector')
    tiny = tiny_model(model_cfg.to_dict())
    key = json.dumps(tiny, sort_keys=True, default=str)
    if key not in cache:
        cache[key] = run_model(tiny)
        own = tiny_model(model_cfg.to_dict(), resnet18=False)
        if cache[key]['status'] != 'ran' and own != tiny:  # the neck may not take a ResNet-18: its own backbone
            cache[key] = dict(run_model(own), backbone='own')
    return dict(record, model=hashlib.sha1(key.encode()).hexdigest()[:12], **cache[key])


def run_model(tiny: dict) -> dict:
    """Build, predict and check every method on one shrunk model."""
    import torch

    from mmal.models.detection.adapter import find_family
    try:
        model = build(tiny)
    except Exception as err:  # noqa: BLE001
        return dict(status='cannot_build', reason=one_line(err))
    try:
        data = batch()
        theirs = predicted(model, data)
    except Exception as err:  # noqa: BLE001
        try:
            data = batch(sizes=LARGE_SIZES)
            theirs = predicted(model, data)
        except Exception:  # noqa: BLE001
            return dict(status='cannot_predict', reason=one_line(err))
    with torch.no_grad():
        feats = model.extract_feat(model.data_preprocessor(copy.deepcopy(data), False)['inputs'])
    if not all(bool(torch.isfinite(f).all()) for f in feats):
        return dict(status='cannot_predict', reason='its randomly initialised backbone gives non-finite features')
    head: Any = getattr(model, 'bbox_head', None) or getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    head_name = type(head[-1] if isinstance(head, (list, tuple)) or type(head).__name__ == 'ModuleList'
                     else head).__name__
    try:
        family = find_family(model).__name__
    except (TypeError, ValueError):
        family = None
    out: Dict[str, Any] = dict(status='ran', head=head_name, family=family, boxes=sum(len(t) for t in theirs))
    from mmal.checkpoint import CLASS_QUALITY_ATTR
    from mmal.engine.class_quality import num_classes_of
    try:  # what ClassQualityHook leaves on a trained model (PPAL's scorer reads it)
        quality = torch.rand(num_classes_of(model), generator=torch.Generator().manual_seed(0))
        setattr(model, CLASS_QUALITY_ATTR, quality)
    except TypeError:  # no box head with classes (mask-only heads): nothing a family claims
        pass
    compared: Dict[str, Optional[str]] = {}
    out['methods'] = {method: check_method(model, method, data, theirs, compared) for method in METHODS}
    return out


def sweep(paths: List[str], progress: bool = True) -> List[dict]:
    """The records of ``paths``, in order."""
    from mmdet.utils import register_all_modules

    import mmal  # noqa: F401  (registers mmal's families; applies mmal.compat)
    register_all_modules(init_default_scope=True)
    warnings.filterwarnings('ignore')
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine', log_level='ERROR')
    cache: Dict[str, dict] = {}
    records = []
    start = time.time()
    for i, path in enumerate(paths):
        records.append(sweep_one(path, cache))
        if progress:
            r = records[-1]
            verdict = r['status'] if r['status'] != 'ran' else ' '.join(
                f'{m}={v.split(":")[0]}' for m, v in r['methods'].items())
            print(f'[{i + 1}/{len(paths)} {time.time() - start:.0f} s, {len(cache)} models] {path}: {verdict}',
                  flush=True)
    return records


def failures(records: List[dict]) -> List[str]:
    """Each config x method that neither equals predict nor is refused in one sentence."""
    return [f'{r["config"]} {m}: {v}' for r in records if r['status'] == 'ran'
            for m, v in r['methods'].items() if v.startswith('FAILED')]


def render(records: List[dict]) -> str:
    """The docs section: counts per outcome and method, and each refused detector with the reason."""
    status = Counter(r['status'] for r in records)
    ran = [r for r in records if r['status'] == 'ran']
    lines = [f'{len(records)} configs of mmdet {_mmdet_version()}\'s zoo walked: {status["ran"]} built tiny and '
             f'predicted on CPU ({len({r["model"] for r in ran})} distinct models), {status["not_detector"]} '
             'without a detector (tracking, ReID, video, dataset-only), '
             f'{status["cannot_build"]} that mmdet cannot build here and {status["cannot_predict"]} that it cannot '
             f'predict with on CPU (reasons in `docs/zoo_sweep.json`). {sum(r["boxes"] == 0 for r in ran)} of the '
             f'{status["ran"]} predicted no box on the two images (their comparisons are of empty sets).', '',
             '| method | boxes equal `predict` | refused before training | failed |', '|---|--:|--:|--:|']
    for method in METHODS:
        verdicts = Counter(r['methods'][method].split(':')[0] for r in ran)
        lines.append(f'| {method} | {verdicts["equal"]} | {verdicts["refused"]} | {verdicts["FAILED"]} |')
    skipped = Counter(f'{r["status"].replace("_", " ")}: {_no_machine_paths(r["reason"])[:150]}' for r in records
                      if r['status'] in ('cannot_build', 'cannot_predict'))
    if skipped:
        lines += ['', 'Skipped (mmdet itself fails here; configs per reason):', '']
        lines += [f'- {count} x {reason}' for reason, count in sorted(skipped.items())]
    refused: Dict[str, set] = defaultdict(set)
    for r in ran:
        if r['methods']['Entropy'].startswith('refused'):
            refused[f'{r["detector"]} ({r["head"]})'].add(r['config'].split('/')[0] + '/')
    lines += ['', 'Detectors no family claims, as detector (box head) in the zoo folders where they are refused: '
              'their `predict` runs methods no family reproduces, so every per-box method is refused before '
              'training in one sentence (CoreSet, which reads only backbone features, still runs):', '']
    lines += [f'- {name}: {", ".join(f"`{f}`" for f in sorted(folders))}' for name, folders in sorted(refused.items())]
    only_on = matrix.only_on()
    partly: Dict[str, set] = defaultdict(set)
    for r in ran:
        if r['methods']['Entropy'] == 'equal':
            for method, verdict in r['methods'].items():
                if verdict.startswith('refused') and r['family'] in only_on.get(method, {r['family']}):
                    partly[f'{method} on {r["detector"]} ({r["head"]})'].add(_reason(verdict))
    for method, families in only_on.items():
        on = Counter(r['methods'][method].split(':')[0] for r in ran if r['family'] in families)
        off = sum(r['methods'][method].startswith('refused') for r in ran
                  if r['family'] is not None and r['family'] not in families)
        refusing = sorted({r['family'] for r in ran if r['family'] is not None} - families)
        if len(families) <= len(refusing):
            lines += ['', f'{method} runs on {", ".join(sorted(families))} detectors only ({on["equal"]} equal to '
                      f'`predict`) and is refused by design on the {off} other claimed ones.']
        else:
            lines += ['', f'{method} is refused by design on {", ".join(refusing)} detectors ({off} claimed configs); '
                      f'{on["equal"]} others equal `predict`.']
    if partly:
        lines += ['', 'Methods refused on claimed detectors:', '']
        lines += [f'- {name}: {"; ".join(sorted(reasons))}' for name, reasons in sorted(partly.items())]
    return '\n'.join(lines)


def _no_machine_paths(text: str) -> str:
    """A message with the installed packages' folder left out (``.../site-packages/mmdet/x`` -> ``mmdet/x``)."""
    return re.sub(r'[^\s"\']*/site-packages/', '', text)


def _reason(verdict: str) -> str:
    """The refusal's sentence without the ``<Method> cannot score <Detector>:`` prefix, shortened."""
    text = re.sub(r'^refused: \S+ cannot score \S+: ', '', verdict)
    if 'is not a supported detector' in text:
        return 'no family reproduces its predict'
    return text.split('; ')[0][:160]


def _mmdet_version() -> str:
    import mmdet
    return mmdet.__version__


def readme_section(text: str) -> str:
    """What docs/detectors.md holds between the sweep's markers."""
    return matrix.readme_section(text, START, END)


def write_record(records: List[dict], path: str = RECORD) -> None:
    """The JSON record of a whole sweep, one config a line (a re-run's diff shows the configs that changed)."""
    from mmal.fileio import atomic_write_text
    atomic_write_text(path, '[\n' + ',\n'.join(json.dumps(r, sort_keys=True) for r in records) + '\n]\n')
