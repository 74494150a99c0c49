"""An unlabeled image pool: a VOC ImageSets list, a COCO json, a folder, or a list of paths."""
from __future__ import annotations

import os.path as osp
from collections import Counter
from typing import List, Optional, Sequence

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

from ..errors import UserError
from ..fileio import IMAGE_EXTENSIONS, list_images
from ..schema import coco_images, read_json, read_lines


@DATASETS.register_module()
class ImagePoolDataset(BaseDataset):
    """Images without annotations, for scoring. Each item carries ``img_id`` and ``img_path``.

    ``pool`` is one of:

    - a VOC ImageSets file (``.../VOC2007/ImageSets/Main/trainval.txt``): one image id per line,
      images at ``.../VOC2007/JPEGImages/<id>.jpg``;
    - a COCO json: its ``images`` with ``file_name`` relative to ``img_dir`` (default: the json's
      folder);
    - a folder: every image file in it and its subfolders (sorted by relative path; the id is that
      path without its extension);
    - a list of image paths, or of ``dict(img_id=..., img_path=...)``.

    A pool without any image is an error (one sentence), not an empty ranking.

    Args:
        pool: Where the images are (see above).
        pipeline: mmcv transforms; annotations are never loaded.
        img_dir: Image folder of a COCO json.
    """

    METAINFO: dict = dict()

    def __init__(self, pool, pipeline: Sequence = (), img_dir: Optional[str] = None, **kwargs) -> None:
        self.pool, self.img_dir = pool, img_dir
        super().__init__(ann_file='', pipeline=list(pipeline), serialize_data=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        items = self._list()
        if not items:
            raise UserError(f'the image pool {self.pool if isinstance(self.pool, str) else "list"} holds no images '
                            f'(looked for {", ".join(IMAGE_EXTENSIONS)}); point it at a folder of images, a VOC '
                            'ImageSets list or a COCO json.')
        return items

    def _list(self) -> List[dict]:
        pool = self.pool
        if isinstance(pool, (list, tuple)):
            return [dict(img_id=p['img_id'], img_path=str(p['img_path'])) if isinstance(p, dict) else
                    dict(img_id=osp.splitext(osp.basename(str(p)))[0], img_path=str(p)) for p in pool]
        if not osp.exists(pool):
            raise UserError(f'the image pool {pool} does not exist; pass a VOC ImageSets list, '
                            'a COCO json or a folder of images.')
        if osp.isdir(pool):
            return [dict(img_id=osp.splitext(n)[0], img_path=osp.join(pool, n)) for n in list_images(pool)]
        if pool.endswith('.json'):
            fix = 'pass a COCO annotation file, a VOC ImageSets list or a folder.'
            images = coco_images(read_json(pool, fix), pool, fix)
            img_dir = self.img_dir or osp.dirname(pool)
            return [dict(img_id=im['id'], img_path=osp.join(img_dir, im['file_name'])) for im in images]
        # VOC ImageSets list: <root>/ImageSets/Main/<split>.txt -> <root>/JPEGImages/<id>.jpg
        voc_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(pool))))
        ids = [line.split()[0] for line in read_lines(pool, 'a pool list is a VOC ImageSets file or image paths, one '
                                                            'per line (or pass a folder or a COCO json).')]
        if len(set(ids)) < len(ids):
            first = next(i for i, n in Counter(ids).items() if n > 1)
            raise UserError(f'{pool} lists {first!r} more than once ({len(ids) - len(set(ids))} repeated lines); '
                            'list every image once.')
        return [
            dict(img_id=i, img_path=i if i.lower().endswith(IMAGE_EXTENSIONS) else
                 osp.join(voc_root, 'JPEGImages', f'{i}.jpg')) for i in ids
        ]
