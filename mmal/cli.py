"""What the command-line tools share: reading a config and turning user errors into one sentence."""
from __future__ import annotations

import os
import os.path as osp
import sys
import tempfile
import traceback
from typing import Callable, Optional

from mmengine.config import Config

from . import interrupt
from .errors import UserError
from .fileio import is_write_error


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
    """Run a tool's ``main`` behind one guard, so the terminal never shows a bare traceback:

    - a :class:`UserError` is one line, exit code 2;
    - a write that cannot succeed (disk full, read-only, size limit, name too long) is one line naming
      the path, exit code 2;
    - a config that names an unregistered type is one line, exit code 2;
    - Ctrl-C is the ``interrupted`` line, exit code 130 (also when a library swallowed the first
      one, see :mod:`mmal.interrupt`);
    - anything else is one line with the path of a log file holding the traceback, exit code 1.
    """
    interrupt.install()
    try:
        return main()
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'\n{interrupted}', file=sys.stderr)
        return 130
    except OSError as err:
        if not is_write_error(err):
            return _unexpected(err)
        where = f' {err.filename}' if err.filename else ''
        print(f'error: cannot write{where}: {err.strerror or err}; free space, raise the limit or choose another '
              'output folder, then run again (with --resume where the tool has it).', file=sys.stderr)
        return 2
    except KeyError as err:
        text = str(err.args[0]) if err.args else ''
        if 'is not in the' in text and 'registry' in text:
            print(f'error: the config names a type that is not registered ({text}); check the spelling of its '
                  'type= entries (and custom_imports for types of other packages).', file=sys.stderr)
            return 2
        return _unexpected(err)
    except Exception as err:  # noqa: BLE001 - the last guard: one line and a log file instead of a traceback
        return _unexpected(err)


def _unexpected(err: BaseException) -> int:
    """Write the traceback to a log file and say where, in one line (exit code 1)."""
    fd, path = tempfile.mkstemp(prefix='mmal-error-', suffix='.log')
    with os.fdopen(fd, 'w') as f:
        f.write(''.join(traceback.format_exception(err)))
    first = str(err).splitlines()[0] if str(err) else ''
    print(f'error: unexpected {type(err).__name__}: {first}; this is a bug in mmal or its stack, the traceback is '
          f'in {path}: please report it with that file.', file=sys.stderr)
    return 1
