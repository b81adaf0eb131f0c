"""distill-or-annotate's Python API: the same work as the `sweep` command line.

    from sweep import SweepConfig, best_allocations, run_sweep

    summary = run_sweep(SweepConfig(name="fever-B30", task="fever", budget_usd=30,
                                    n_seed_labels=100, n_trials=20))
    best_allocations(summary.tracking_uri, task="fever")

The package is layered by job, each layer importing only those before it: `config` (the
values a sweep is described by), `tracking` (MLflow and Optuna stores, the result schema),
`decide` (the landscape posterior every answer comes from, and `sweep plan`'s procedure),
`engine` (Ray Tune trials and pilots), `cli` (the command line). The names below load their
layer on first use, so `import sweep` stays light (no Ray, MLflow or torch until a sweep
runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.decide.plan import Plan, PlanSettings
    from sweep.engine.pilots import run_plan
    from sweep.engine.tuner import SweepSummary, run_sweep
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import BestAllocation, TrialRow, best_allocations, finished_trials

_HOMES = {
    "SweepConfig": "sweep.config",
    "run_sweep": "sweep.engine.tuner",
    "SweepSummary": "sweep.engine.tuner",
    "best_allocations": "sweep.tracking.results",
    "finished_trials": "sweep.tracking.results",
    "BestAllocation": "sweep.tracking.results",
    "TrialRow": "sweep.tracking.results",
    "Tracker": "sweep.tracking.mlflow_store",
    "PlanSettings": "sweep.decide.plan",
    "Plan": "sweep.decide.plan",
    "run_plan": "sweep.engine.pilots",
}

__all__ = [
    "BestAllocation",
    "Plan",
    "PlanSettings",
    "SweepConfig",
    "SweepSummary",
    "Tracker",
    "TrialRow",
    "best_allocations",
    "finished_trials",
    "run_plan",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    # PEP 562: a name's layer is imported when the name is first used.
    if name not in _HOMES:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
