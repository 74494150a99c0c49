"""mmal: active learning on MMDetection.

``import mmal`` (or ``custom_imports=dict(imports=['mmal'])`` in any mmdet config) applies the
fixes of :mod:`mmal.compat` and registers every mmal module into mmdet's registries.
"""
from . import compat

compat.apply()

from . import datasets, models  # noqa: E402,F401  (registers modules)

__version__ = '0.1.0'
