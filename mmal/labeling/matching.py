"""Which pool image a labeling tool's file name or URL names. Pure Python.

Labeling tools name an image in many ways: mmal's own task URL (``/data/local-files/?d=day1/a.jpg``),
the path CVAT keeps (``day1/a.jpg`` or ``a.jpg``), an absolute path, a Label Studio upload
(``/data/upload/3/1a2b3c4d-a.jpg``: the base name behind an 8-hex-digit hash), an object-store
or web URL with a query string (``s3://bucket/photos/day1/a.jpg``, ``https://host/photos/day1/a.jpg?X-Amz-...``).

An image is matched by its path relative to the project's image root: the pool image whose
relative path is the longest whole-component suffix of the name's path. A bare base name (an
upload, or a path whose folders the pool does not have) matches only when that base name is unique
in the whole pool, so a box drawn on ``day1/IMG_0001.jpg`` is never stored on ``day2/IMG_0001.jpg``.
"""
from __future__ import annotations

import posixpath
import re
import urllib.parse
from typing import Dict, List, Optional, Sequence, Tuple

#: Label Studio prefixes an uploaded file's name with 8 hex digits and a dash.
_UPLOAD = re.compile(r'^[0-9a-f]{8}-(.+)$')


class AmbiguousName(ValueError):
    """A name that fits several pool images equally well."""


def name_path(name: str) -> Tuple[List[str], bool]:
    """The path components a file name or URL names, and whether it is a Label Studio upload
    (whose folders say nothing about the pool)."""
    text = name.strip()
    parts = urllib.parse.urlsplit(text)
    query = urllib.parse.parse_qs(parts.query)
    if 'd' in query and parts.path.rstrip('/').endswith('local-files'):
        path = query['d'][0]  # Label Studio local files: the path is the query's d
    elif parts.scheme and len(parts.scheme) > 1:  # a URL (a Windows drive letter is not a scheme)
        path = urllib.parse.unquote(parts.path)
    else:
        path = urllib.parse.unquote(text.split('?', 1)[0])
    components = [c for c in path.replace('\\', '/').split('/') if c not in ('', '.')]
    upload = len(components) >= 3 and components[-3] == 'upload' and components[-2].isdigit()
    if upload:
        hit = _UPLOAD.match(components[-1])
        components = [hit.group(1) if hit else components[-1]]
    return components, upload


class PoolIndex:
    """Looks pool images up by any name a labeling tool gives them.

    Args:
        files: ``(pool id, path relative to the image root)`` of every pool image.
    """

    def __init__(self, files: Sequence[Tuple[int, str]]) -> None:
        self.by_path: Dict[str, int] = {}
        self.by_base: Dict[str, List[str]] = {}
        for image_id, rel in files:
            rel = posixpath.normpath(rel.replace('\\', '/')).lstrip('/')
            self.by_path[rel] = image_id
            self.by_base.setdefault(posixpath.basename(rel), []).append(rel)

    def find(self, name: str) -> Optional[int]:
        """The pool id ``name`` names, or None when it names no pool image.

        Raises:
            AmbiguousName: It fits several pool images and nothing tells them apart.
        """
        components, upload = name_path(name)
        if not components:
            return None
        candidates = self.by_base.get(components[-1], [])
        if not upload:
            best, best_len = [], 0
            for rel in candidates:
                rel_parts = rel.split('/')
                if len(rel_parts) <= len(components) and components[-len(rel_parts):] == rel_parts:
                    if len(rel_parts) > best_len:
                        best, best_len = [rel], len(rel_parts)
                    elif len(rel_parts) == best_len:
                        best.append(rel)
            if len(best) == 1 and (best_len > 1 or len(components) == 1 or len(candidates) == 1):
                return self.by_path[best[0]]
        if len(candidates) == 1:
            return self.by_path[candidates[0]]
        if len(candidates) > 1:
            shown = ', '.join(sorted(candidates)[:3]) + (' ...' if len(candidates) > 3 else '')
            raise AmbiguousName(f'{name!r} could be any of {len(candidates)} pool images ({shown})')
        return None
