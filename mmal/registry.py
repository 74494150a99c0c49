"""mmal's own registries (mmal's models, hooks and datasets go into mmdet's)."""
from mmengine.registry import Registry

#: Acquisition functions, named in configs as ``scorer=dict(type='Entropy', ...)``.
SCORERS = Registry('scorer', scope='mmal', locations=['mmal.scoring'])

#: Model adapters that turn a model and a batch into the outputs a scorer requires.
ADAPTERS = Registry('adapter', scope='mmal', locations=['mmal.models'])
