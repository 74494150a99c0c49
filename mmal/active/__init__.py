"""The active-learning driver: settings, crash-safe run state, runner configs, cycle hooks, the loop."""
from .annotator import ExactAnnotator, NoisyAnnotator
from .cycle_hooks import CycleHook, CycleLogHook, ResultsTableHook, ScalarsHook
from .loop import ActiveLearningLoop
from .settings import ALSettings
from .state import RunState

__all__ = ['ActiveLearningLoop', 'ExactAnnotator', 'NoisyAnnotator', 'ALSettings', 'RunState', 'CycleHook',
           'CycleLogHook', 'ResultsTableHook', 'ScalarsHook']
