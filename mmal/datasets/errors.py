"""Building a dataset from a config, with one sentence that names the file on a data error."""
from __future__ import annotations

import glob
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Iterator

from mmdet.registry import DATASETS

from ..errors import UserError
from .annotations import read_voc_xml


def _roots(cfg: dict) -> Iterator[str]:
    """``data_root`` of every leaf of a (nested) dataset config."""
    for child in cfg.get('datasets', []):
        yield from _roots(child)
    if 'dataset' in cfg and isinstance(cfg['dataset'], dict):
        yield from _roots(cfg['dataset'])
    if cfg.get('data_root'):
        yield cfg['data_root']


def check_xml_files(cfg: dict) -> None:
    """Read every annotation XML under the config's data roots against the VOC schema.

    Raises:
        UserError: The first file that does not parse or fit (names it and the element).
    """
    for root in _roots(cfg):
        for path in sorted(glob.glob(osp.join(root, '**', 'Annotations', '*.xml'), recursive=True)):
            read_voc_xml(path)


def build_dataset(cfg: dict):
    """``DATASETS.build(cfg)`` fully initialised (annotations read now, not in the first batch).

    Raises:
        UserError: An annotation file is malformed or a file is missing (the sentence names it).
    """
    try:
        dataset = DATASETS.build(cfg)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
    except (ET.ParseError, ValueError, AttributeError, TypeError) as err:
        check_xml_files(cfg)  # names the file when an annotation file is to blame
        if isinstance(err, ET.ParseError):
            raise UserError(f'an annotation file is not valid XML ({err}); fix or remove it.') from None
        raise
    except FileNotFoundError as err:
        raise UserError(f'{err.filename or err} does not exist; check the dataset paths of the config.') from None
    return dataset
