"""Ctrl-C that always stops a run.

A library can swallow the ``KeyboardInterrupt`` that Python raises on SIGINT (a bare ``except`` in a
config formatter, an exception raised inside a ``__del__``, ...), and the run would go on as if
nothing had been pressed. :func:`install` remembers that SIGINT arrived; the driver and a training
hook call :func:`check` between steps, which raises ``KeyboardInterrupt`` again if it was lost.
"""
from __future__ import annotations

import signal
from types import FrameType
from typing import Optional

_requested = False


def _on_sigint(signum: int, frame: Optional[FrameType]) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT as Python does (``KeyboardInterrupt``), and remember that it came."""
    signal.signal(signal.SIGINT, _on_sigint)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if SIGINT arrived since :func:`install`.

    Raises:
        KeyboardInterrupt: Ctrl-C was pressed (even if a library swallowed the first one).
    """
    if _requested:
        raise KeyboardInterrupt
