"""mmal: active learning on MMDetection.

``import mmal`` (or ``custom_imports=dict(imports=['mmal'])`` in any mmdet config) applies the
fixes of :mod:`mmal.compat` and registers every mmal module into mmdet's registries.
``mmal.scoring`` and ``mmal.selection`` need only torch (and mmengine for the scorer registry),
so they also work where mmdet is not installed.
"""
__version__ = '0.1.0'

try:
    import mmdet
except ImportError:  # pragma: no cover - the scoring/selection-only use
    mmdet = None

if mmdet is not None:
    from . import compat

    compat.apply()
    from . import active, datasets, engine, evaluation, models  # noqa: F401  (registers modules)

from . import scoring, selection  # noqa: F401
