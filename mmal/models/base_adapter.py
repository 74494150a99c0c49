"""The base of every adapter: a model and a batch in, the outputs a scorer and selector asked for out."""
from __future__ import annotations

from typing import ClassVar, Collection, Dict, FrozenSet

from torch import nn

from ..outputs import ModelOutputs, check_requires


class BaseAdapter:
    """Turns one dataloader batch into :class:`~mmal.outputs.ModelOutputs`.

    The requested keys are validated once, here, against what the adapter can compute for this
    model; ``__call__`` then computes exactly those (plus ``num_images`` and, for per-box outputs,
    ``image_index``).

    Args:
        model: The trained model (unwrapped, in eval mode while scoring).
        requires: Output keys (:mod:`mmal.outputs`) the scorer and selector read.

    Raises:
        ValueError: An unknown key.
        TypeError: A key this adapter cannot compute for ``model``: one sentence naming it and
            what to use instead.
    """

    #: Every key this adapter can compute (for some model).
    provides: ClassVar[FrozenSet[str]] = frozenset()
    #: Advice per key this adapter cannot compute, appended to the error.
    hints: ClassVar[Dict[str, str]] = {}

    def __init__(self, model: nn.Module, requires: Collection[str]) -> None:
        self.model = model
        provides = self.provides_for(model)
        missing = sorted(set(requires) - provides)
        hint = ' '.join(self.hints[k] for k in missing if k in self.hints)
        try:
            self.requires = check_requires(requires, provides, f'{type(self).__name__} on {type(model).__name__}')
        except TypeError as err:
            raise TypeError(f'{str(err)[:-1]}{"; " + hint if hint else "."}') from None

    def provides_for(self, model: nn.Module) -> FrozenSet[str]:
        """What this adapter can compute for ``model`` (by default :attr:`provides`)."""
        return self.provides

    def __call__(self, data: Dict) -> ModelOutputs:
        """The outputs of one dataloader batch."""
        raise NotImplementedError
