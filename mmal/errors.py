"""Errors a user can cause (paths, budgets, names): printed as one sentence, without a traceback."""
import sys


class UserError(Exception):
    """A problem with the user's input; the message names it and the fix."""


def report_uncaught_user_errors() -> None:
    """Print an uncaught :class:`UserError` as ``error: <sentence>`` on stderr, without a traceback
    (the interpreter then exits with status 1); any other exception goes to the hook installed before.

    mmal's tools catch their errors themselves (:func:`mmal.cli.run_tool`); this covers a refusal of
    mmal's hooks under a script that does not, such as mmdet's own ``tools/train.py``. Installing it
    twice changes nothing.
    """
    previous = sys.excepthook
    if getattr(previous, 'mmal_user_errors', False):
        return

    def excepthook(kind, value, traceback) -> None:
        if issubclass(kind, UserError):
            print(f'error: {value}', file=sys.stderr)
        else:
            previous(kind, value, traceback)

    excepthook.mmal_user_errors = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
