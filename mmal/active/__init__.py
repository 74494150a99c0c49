"""The active-learning driver: settings, crash-safe run state, the cycle loop."""
from .loop import ActiveLearningLoop
from .settings import ALSettings
from .state import RunState

__all__ = ['ActiveLearningLoop', 'ALSettings', 'RunState']
