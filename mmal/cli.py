"""What the command-line tools share: reading a config and turning user errors into one sentence."""
from __future__ import annotations

import os.path as osp
import sys
from typing import Callable, Optional

from mmengine.config import Config

from . import interrupt
from .errors import UserError


def load_config(path: str, options: Optional[dict] = None) -> Config:
    """Read an mmengine config, merged with ``--cfg-options``.

    Raises:
        UserError: The file is missing or not a valid config (names the file, the line, the fix).
    """
    if not osp.isfile(path):
        raise UserError(f'config file {path} does not exist; pass the path of a config under configs/.')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as err:
        inner = err.__context__ if isinstance(err.__context__, SyntaxError) else err
        where = f'line {inner.lineno}: ' if getattr(inner, 'lineno', None) else ''
        what = inner.msg if hasattr(inner, 'msg') else err
        raise UserError(f'config file {path} has a syntax error ({where}{what}); fix it and run again.') from None
    except (NameError, ImportError, FileNotFoundError, KeyError, TypeError) as err:
        raise UserError(f'config file {path} cannot be read ({type(err).__name__}: {err}); fix it and run '
                        'again.') from None
    if options:
        cfg.merge_from_dict(options)
    return cfg


def run_tool(main: Callable[[], int], interrupted: str = 'interrupted.') -> int:
    """Run a tool's ``main``: a :class:`UserError` is printed as one line with exit code 2, Ctrl-C
    as the ``interrupted`` line with exit code 130 (also when a library swallowed the first one,
    see :mod:`mmal.interrupt`)."""
    interrupt.install()
    try:
        return main()
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'\n{interrupted}', file=sys.stderr)
        return 130
