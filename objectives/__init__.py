"""Money, tasks, data, metrics and the trial's values. Light to import: the modules that
train (`distill_or_annotate`, `trial_setup`, `trial_stages`, `train`, `families`,
`models`) are imported by name."""

from objectives.budget import Allocation, Budget, PriceBook, allocate
from objectives.data import Example, TaskData, load_task_data, split_pool
from objectives.metrics import MetricResult, score
from objectives.tasks import BUILTIN_TASKS, TaskSpec, get_task, load_task_file, task_names
from objectives.trial_config import PRESETS, TrialConfig, TrialResult, trial_config

__all__ = [
    "BUILTIN_TASKS",
    "PRESETS",
    "Allocation",
    "Budget",
    "Example",
    "MetricResult",
    "PriceBook",
    "TaskData",
    "TaskSpec",
    "TrialConfig",
    "TrialResult",
    "allocate",
    "get_task",
    "load_task_data",
    "load_task_file",
    "score",
    "split_pool",
    "task_names",
    "trial_config",
]
