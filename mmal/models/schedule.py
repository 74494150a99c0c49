"""The training iteration as mmengine's runner reports it, for losses with a schedule (CSD, LLAL, MixMatch).

mmengine's ``RuntimeInfoHook`` writes ``iter`` (0-based, the iteration being trained) and
``max_iters`` to the message hub before every iteration. Reading them, rather than counting calls
in a model buffer, keeps a schedule right when a model is fine-tuned from an earlier checkpoint
(whose buffers would carry the old count) and when a run is resumed.
"""
from __future__ import annotations

from mmengine.logging import MessageHub


def current_iter() -> int:
    """The iteration being trained; 0 outside a runner."""
    return int(MessageHub.get_current_instance().get_info('iter', 0))


def total_iters(default: int) -> int:
    """The run's ``max_iters``, or ``default`` outside a runner."""
    return int(MessageHub.get_current_instance().get_info('max_iters', default))
