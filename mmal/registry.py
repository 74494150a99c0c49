"""mmal's own registries (mmal's models, hooks and datasets go into mmdet's)."""
from mmengine.registry import Registry


class _OwnScopeRegistry(Registry):
    """A registry that builds in its own scope whatever the default scope (mmdet in configs), so
    building a scorer inside an mmdet run needs no scope search (and logs no warning about it)."""

    def build(self, cfg, *args, **kwargs):
        cfg = dict(cfg)
        cfg.setdefault('_scope_', self.scope)
        return super().build(cfg, *args, **kwargs)


#: Acquisition functions, named in configs as ``scorer=dict(type='Entropy', ...)``.
SCORERS = _OwnScopeRegistry('scorer', scope='mmal', locations=['mmal.scoring'])

#: Model adapters that turn a model and a batch into the outputs a scorer requires.
ADAPTERS = _OwnScopeRegistry('adapter', scope='mmal', locations=['mmal.models'])

#: Batch selection (top-k, k-center greedy, BADGE, ...), named in configs as
#: ``active_learning.selection = dict(type='TopK', ...)``.
SELECTORS = _OwnScopeRegistry('selector', scope='mmal', locations=['mmal.selection'])

#: Detector families for ``DetectionAdapter``: how a family runs, post-processes and is sampled.
DETECTOR_FAMILIES = _OwnScopeRegistry('detector family', scope='mmal', locations=['mmal.models'])

#: Hooks around the steps of an active-learning cycle (``active_learning.cycle_hooks``).
CYCLE_HOOKS = _OwnScopeRegistry('cycle hook', scope='mmal', locations=['mmal.active'])

#: Simulated annotators of the driver (``active_learning.annotator``): what labels come back for
#: the images it buys.
ANNOTATORS = _OwnScopeRegistry('annotator', scope='mmal', locations=['mmal.active'])

#: Label-free image features for the selectors that read features (``active_learning.features``),
#: named by their ``source``: ``self_supervised``, ``checkpoint``.
FEATURE_SOURCES = _OwnScopeRegistry('feature source', scope='mmal', locations=['mmal.engine'])
