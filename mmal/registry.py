"""mmal's own registries (mmal's models, hooks and datasets go into mmdet's)."""
from mmengine.registry import Registry

#: Acquisition functions, named in configs as ``scorer=dict(type='Entropy', ...)``.
SCORERS = Registry('scorer', scope='mmal', locations=['mmal.scoring'])
