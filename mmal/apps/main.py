"""The ``mmal`` command, what ``pip install`` puts on PATH.

    mmal train   CONFIG [--work-dir DIR] [--resume] ...   active learning: train, acquire, repeat
    mmal select  CONFIG CHECKPOINT --pool POOL --budget N  rank a pool with a trained model
    mmal project init|train|select|export|push|import|pull|config|status PROJECT ...
    mmal report  WORK_DIR [WORK_DIR ...] --out DIR          tables and plots of finished runs
    mmal fit     CONFIG [--work-dir DIR]                    train a config once (as mmdet's tools/train.py)
    mmal sweep   [--only PATTERN ...] [--matrix] [--write]  mmdet's zoo and the support table, checked

``mmal COMMAND --help`` describes each. ``tools/al_train.py``, ``tools/al_select.py``,
``tools/al_project.py``, ``tools/al_report.py``, ``tools/train.py``, ``tools/zoo_sweep.py`` and
``tools/support_matrix.py`` run the same code.
"""
from __future__ import annotations

import signal
import sys
from importlib import import_module
from typing import List, Optional

#: Command -> (module of mmal.apps, what it does).
COMMANDS = {
    'train': ('al_train', 'active learning: train, acquire, repeat (tools/al_train.py)'),
    'select': ('al_select', 'rank a pool of images with a trained model (tools/al_select.py)'),
    'project': ('al_project', 'label your own images, one cycle after another (tools/al_project.py)'),
    'report': ('al_report', 'tables and plots of finished runs (tools/al_report.py)'),
    'fit': ('train', 'train a config once, as mmdet\'s tools/train.py (tools/train.py)'),
    'sweep': ('sweep', 'check every mmdet zoo config against every method; the support table (tools/zoo_sweep.py)'),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return 'usage: mmal COMMAND [ARGS...]\n\ncommands:\n' + '\n'.join(
        f'  {name:<{width}}  {what}' for name, (_, what) in COMMANDS.items()) + '\n\nmmal COMMAND --help says more.'


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``mmal COMMAND ARGS``; returns the command's exit code."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C while importing ends quietly; the command handles it later
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ('-h', '--help'):
        print(usage())
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f'error: mmal has no command {args[0]!r}; use one of {", ".join(COMMANDS)} (mmal --help).',
              file=sys.stderr)
        return 2
    sys.argv[0] = f'mmal {args[0]}'
    return import_module(f'mmal.apps.{COMMANDS[args[0]][0]}').main(args[1:])


if __name__ == '__main__':
    sys.exit(main())
