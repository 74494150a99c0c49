"""Reading the files users hand to mmal, each against a declared shape. Pure Python.

Every reader raises :class:`~mmal.errors.UserError` with one sentence naming the file, the entry and
the field that is wrong, and the fix; none returns half-checked data. The state files of a run have
their shapes in :mod:`mmal.records`; checkpoints in :mod:`mmal.checkpoint`; VOC annotations in
:mod:`mmal.datasets.annotations`.
"""
from __future__ import annotations

import csv
import io
import json
import os.path as osp
from typing import Any, Callable, Dict, List, Sequence, Tuple

from .errors import UserError


def _check_regular(path: str, fix: str) -> None:
    """Refuse anything but a regular file before opening it (a pipe or a device would block the read)."""
    if not osp.exists(path):
        raise UserError(f'{path} does not exist; {fix}')
    if not osp.isfile(path):
        kind = 'a folder' if osp.isdir(path) else 'not a regular file (a pipe or a device, which could block)'
        raise UserError(f'{path} is {kind}; {fix}')


def read_json(path: str, fix: str) -> Any:
    """The parsed JSON file ``path``.

    Args:
        path: The file.
        fix: What to do when it is missing or broken, ending the sentence.

    Raises:
        UserError: It does not exist, is not a regular file, or is not UTF-8 JSON.
    """
    _check_regular(path, fix)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f'{path} is not valid JSON ({type(err).__name__}: {err}); {fix}') from None
    except RecursionError:
        raise UserError(f'{path} nests its JSON too deeply to be a file mmal reads; {fix}') from None


def read_lines(path: str, fix: str) -> List[str]:
    """The non-empty lines of the text file ``path``, stripped.

    Raises:
        UserError: It is missing, not a regular file, or not UTF-8 text (a binary file, an image, an
            archive).
    """
    _check_regular(path, fix)
    try:
        with open(path, 'rb') as f:
            data = f.read()
        if b'\0' in data:
            raise UnicodeDecodeError('utf-8', data, data.index(b'\0'), data.index(b'\0') + 1, 'NUL byte')
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise UserError(f'{path} is not a text file (byte {err.start} cannot be read as UTF-8 text); {fix}') from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool) and value != ''


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def coco_images(coco: Any, path: str, fix: str) -> List[Dict[str, Any]]:
    """The ``images`` of a COCO json, each checked: an ``id`` (int or text), unique in the file; a
    ``file_name`` (non-empty text); ``width`` and ``height``, where given, positive numbers.

    Args:
        coco: The parsed json.
        path: Its file, for the sentence.
        fix: What to do, ending the sentence.

    Raises:
        UserError: The first entry that does not fit, naming its position and field.
    """
    images = coco.get('images') if isinstance(coco, dict) else None
    if not isinstance(images, list):
        raise UserError(f'{path} is not a COCO json: it has no "images" list; {fix}')
    seen: Dict[Any, int] = {}
    for k, im in enumerate(images):
        where = f'{path}: images[{k}]'
        if not isinstance(im, dict):
            raise UserError(f'{where} is a {type(im).__name__}, not an object with "id" and "file_name"; {fix}')
        if not _is_id(im.get('id')):
            raise UserError(f'{where} has no "id" (a number or text); {fix}')
        if not isinstance(im.get('file_name'), str) or not im['file_name']:
            raise UserError(f'{where} has no "file_name" (the image file, relative to the image folder); {fix}')
        for key in ('width', 'height'):
            if key in im and not _is_size(im[key]):
                raise UserError(f'{where} has "{key}" {im[key]!r}, not a positive number; {fix}')
        if im['id'] in seen:
            raise UserError(f'{where} repeats the id {im["id"]!r} of images[{seen[im["id"]]}]; give every image its '
                            f'own id ({fix})')
        seen[im['id']] = k
    return images


def coco_annotations(coco: Dict[str, Any], path: str, fix: str) -> List[Dict[str, Any]]:
    """The ``annotations`` of a COCO json (none when absent), each an object with an ``image_id``.

    Raises:
        UserError: ``annotations`` is not a list, or an entry has no ``image_id``.
    """
    annotations = coco.get('annotations', [])
    if not isinstance(annotations, list):
        raise UserError(f'{path}: "annotations" is a {type(annotations).__name__}, not a list; {fix}')
    for k, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not _is_id(ann.get('image_id')):
            raise UserError(f'{path}: annotations[{k}] has no "image_id"; {fix}')
    return annotations


#: A column of a CSV table: its name and how its text becomes a value (raising ValueError).
Column = Tuple[str, Callable[[str], Any]]


def read_csv(path: str, columns: Sequence[Column], optional: Sequence[Column] = (), *, fix: str) -> List[Dict]:
    """The rows of a CSV table with a header, each value converted by its column's type.

    Args:
        path: The file.
        columns: Columns every row has.
        optional: Columns that may be missing or empty (None then).
        fix: What to do when the table is damaged, ending the sentence.

    Raises:
        UserError: It is not UTF-8 text, a column is missing, or a value does not convert (names the
            line and the column).
    """
    _check_regular(path, fix)
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8')
    except UnicodeDecodeError:
        raise UserError(f'{path} is not a text table; {fix}') from None
    reader = csv.DictReader(io.StringIO(text, newline=''))
    missing = [name for name, _ in columns if name not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f'{path} has no column {missing[0]!r} (its header is {reader.fieldnames}); {fix}')
    rows = []
    for line, record in enumerate(reader, start=2):
        row: Dict[str, Any] = {}
        for (name, kind), required in [(c, True) for c in columns] + [(c, False) for c in optional]:
            value = record.get(name)
            if not required and value in (None, ''):
                row[name] = None
                continue
            try:
                if value is None:
                    raise ValueError('missing')
                row[name] = kind(value)
            except ValueError:
                raise UserError(f'{path} line {line}: {name} is {value!r}, not a {kind.__name__}; {fix}') from None
        rows.append(row)
    return rows
