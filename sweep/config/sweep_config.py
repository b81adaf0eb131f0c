"""`SweepConfig`: one sweep's settings, checked and with every path made absolute."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objectives.budget import MAX_BUDGET_USD
from sweep.config.modes import BudgetRange, BudgetSearch, Grid, Mode
from sweep.config.paths import absolute_uri, default_storage, default_tracking

SAMPLERS = ("posterior", "tpe", "gp", "random", "grid")
OBJECTIVES = ("real", "synthetic", "replay")
DEFAULT_ROOT = "runs"
DEFAULT_COMPUTE_ALLOWANCE_USD = 1000.0  # a grid point's compute allowance unless one is given
# How long a trial may wait for the cluster's resources (PENDING) before the sweep stops.
DEFAULT_PENDING_TIMEOUT_S = 3600.0


# Field metadata: what the sweep measures, which a resume may not change.
FIXED: Mapping[str, bool] = {"fixed_on_resume": True}


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a task at one budget, searched over the compute fraction (or, in grid
    mode, a labelled x unlabelled grid whose points each buy their labels plus compute up to
    `compute_allowance_usd`; there is no sweep-wide budget and `budget_usd` is 0).

    `trial` holds the TrialConfig fields shared by every trial (all but the sampled ones).
    Stores default to files under `root`: MLflow and Optuna in SQLite, Ray's results and
    the stage cache in folders.
    """

    name: str
    task: str = field(metadata=FIXED)
    budget_usd: float = field(metadata=FIXED)
    n_seed_labels: int = field(metadata=FIXED)
    n_trials: int
    trial: Mapping[str, Any] = field(default_factory=dict, metadata=FIXED)
    preset: str = field(default="paper", metadata=FIXED)
    seeds: int = field(default=1, metadata=FIXED)
    sampler: str = "posterior"
    space: str | None = None  # None: the sampler's natural space
    sampler_seed: int = 0
    concurrency: int = 1
    retries: int = 0
    asha: bool = False
    objective: str = field(default="real", metadata=FIXED)
    replay_table: str | None = None
    standin_work_seconds: float = 0.0  # sleep per stand-in trial, to emulate training time
    address: str | None = None
    root: str = DEFAULT_ROOT
    tracking_uri: str | None = None
    storage: str | None = None
    cpus_per_trial: float = 1.0
    teacher_gpus: float = 0.0
    student_gpus: float = 0.0
    teacher_node_resource: str | None = None
    student_node_resource: str | None = None
    # Grid mode (`sweep grid`, the paper's grid): one trial per labelled x unlabelled pair,
    # all labels bought, and at most `compute_allowance_usd` of compute per point; a point's
    # budget is what its labels cost plus the allowance (0 without unlabelled examples).
    grid_labels: Sequence[int] = field(default=(), metadata=FIXED)
    grid_unlabelled: Sequence[int] = field(default=(), metadata=FIXED)
    compute_allowance_usd: float | None = field(default=None, metadata=FIXED)  # grids only
    # Budget-aware mode: the budget is searched in [low, high] too; two objectives (score up,
    # dollars spent down) and a Pareto set instead of one best trial.
    budget_range: Sequence[float] = field(default=(), metadata=FIXED)
    warm_start: Sequence[str] = ()  # tasks whose best allocations are tried first
    cache: bool = True  # share teachers and soft labels between trials (see objectives.cache)
    max_spend_usd: float | None = None  # start no trial that could take the sweep ledger over it
    # A trial that waits longer than this for its resources (a busy cluster) stops the sweep.
    pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\'\" "):
            raise ValueError(
                f"A sweep name needs letters, digits, '-', '_', '.' or '=' only, but got "
                f"name={self.name!r}."
            )
        for field_name in ("n_trials", "seeds", "concurrency"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field_name} >= 1` must hold, but got {field_name}={value!r}.")
        if self.retries < 0:
            raise ValueError(f"`retries >= 0` must hold, but got retries={self.retries!r}.")
        work = self.standin_work_seconds
        if not (math.isfinite(work) and work >= 0):
            raise ValueError(
                f"`standin_work_seconds >= 0` must hold, but got standin_work_seconds={work!r}."
            )
        if not self.pending_timeout_s > 0:  # inf: wait for resources without bound
            raise ValueError(
                "`pending_timeout_s > 0` must hold, but got "
                f"pending_timeout_s={self.pending_timeout_s!r}."
            )
        if self.max_spend_usd is not None and not self.max_spend_usd > 0:
            raise ValueError(
                f"`max_spend_usd > 0` must hold, but got max_spend_usd={self.max_spend_usd!r}."
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler={self.sampler!r}; valid: {', '.join(SAMPLERS)}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"Unknown objective={self.objective!r}; valid: {', '.join(OBJECTIVES)}."
            )
        if self.objective == "replay" and not self.replay_table:
            raise ValueError("--objective replay needs --replay-table FILE (a CSV of results).")
        # Plain copies, not read-only proxies: the config is pickled to Ray workers and
        # stored as JSON in the study.
        object.__setattr__(self, "trial", absolute_paths(dict(self.trial)))
        # Every path is made absolute here, in the driver: Ray runs each trial in its own
        # working directory, where a relative path would name another (empty) store.
        object.__setattr__(self, "root", str(Path(self.root).resolve()))
        for name in ("tracking_uri", "storage"):
            uri = getattr(self, name)
            object.__setattr__(self, name, None if uri is None else absolute_uri(uri))
        if self.replay_table:
            object.__setattr__(self, "replay_table", str(Path(self.replay_table).resolve()))
        for name in ("grid_labels", "grid_unlabelled", "budget_range", "warm_start"):
            object.__setattr__(self, name, list(getattr(self, name)))
        for name in ("grid_labels", "grid_unlabelled"):  # a grid measures each point once
            object.__setattr__(self, name, list(dict.fromkeys(getattr(self, name))))
        self._check_modes()

    def _check_modes(self) -> None:
        if bool(self.grid_labels) != bool(self.grid_unlabelled):
            raise ValueError("A grid needs both --labels and --unlabelled.")
        if any(n < 1 for n in self.grid_labels) or any(n < 0 for n in self.grid_unlabelled):
            raise ValueError(
                f"Grid labels must be >= 1 and unlabelled counts >= 0, but got "
                f"labels={self.grid_labels}, unlabelled={self.grid_unlabelled}."
            )
        if self.grid_labels and self.n_seed_labels:
            raise ValueError("A grid buys all its labels: n_seed_labels must be 0.")
        self._check_allowance()
        if self.budget_range:
            low, high = [*self.budget_range, 0.0, 0.0][:2]
            if len(self.budget_range) != 2 or not 0 < low < high:
                raise ValueError(
                    "`0 < low < high` must hold for --budget-range LOW,HIGH, but got "
                    f"{','.join(f'{b:g}' for b in self.budget_range)}."
                )
            if self.sampler == "grid" or self.grid_labels:
                raise ValueError("--budget-range needs a searching sampler, not a grid.")
        if self.warm_start and (self.sampler == "grid" or self.grid_labels):
            raise ValueError("--warm-start needs a searching sampler, not a grid.")

    def _check_allowance(self) -> None:
        allowance = self.compute_allowance_usd
        if not self.grid_labels:
            if allowance is not None:
                raise ValueError(
                    "compute_allowance_usd is a grid's (`sweep grid --compute-allowance`); a "
                    "budget sweep splits budget_usd instead."
                )
            return
        if allowance is None or not math.isfinite(allowance) or not allowance > 0:
            raise ValueError(
                "`compute_allowance_usd > 0` must hold, but got "
                f"compute_allowance_usd={allowance!r}."
            )
        if allowance > MAX_BUDGET_USD:
            raise ValueError(
                f"`compute_allowance_usd <= {MAX_BUDGET_USD:.0e}` must hold, but got "
                f"compute_allowance_usd={allowance!r}."
            )
        if self.budget_usd:
            raise ValueError(
                "A grid point buys its labels and pays its compute: a grid takes no budget "
                f"(budget_usd must be 0, got {self.budget_usd!r}); compute_allowance_usd "
                "caps each point's compute."
            )

    @property
    def mode(self) -> Mode:
        """What one trial is a point of (see `sweep.config.modes`), from the fields."""
        if self.grid_labels:
            return Grid(self.grid_labels, self.grid_unlabelled, self.compute_allowance_usd or 0.0)
        if self.budget_range:
            return BudgetRange(*self.budget_range)
        return BudgetSearch()

    @property
    def multi_objective(self) -> bool:
        """Two objectives: a Pareto set, not one best trial, and no intermediate scores."""
        return len(self.mode.metrics[0]) > 1

    @property
    def tracking(self) -> str:
        return self.tracking_uri or default_tracking(self.root)

    @property
    def optuna_storage(self) -> str:
        return self.storage or default_storage(self.root)

    @property
    def ray_storage(self) -> str:
        return str(Path(self.root) / "ray")

    @property
    def report_dir(self) -> str:
        """Where plots and tables of this sweep's store go by default."""
        return str(Path(self.root) / "report")

    @property
    def cache_dir(self) -> str | None:
        """The stage cache trials share (None: every trial computes every stage itself)."""
        if not self.cache:
            return None
        return str(self.trial.get("cache_dir") or Path(self.root) / "cache")

    @property
    def space_name(self) -> str:
        if self.space:
            return self.space
        return "fraction_grid" if self.sampler == "grid" else "distill_or_annotate"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["trial"] = dict(self.trial)
        return out


SWEEP_FIELDS = frozenset(f.name for f in dataclasses.fields(SweepConfig))
FIXED_ON_RESUME = tuple(
    f.name for f in dataclasses.fields(SweepConfig) if f.metadata.get("fixed_on_resume")
)
_PATH_FIELDS = ("data_dir", "cache_dir", "task_file")


def absolute_paths(trial: dict[str, Any]) -> dict[str, Any]:
    """A trial's path fields as absolute paths (as a SweepConfig keeps them)."""
    return {k: str(Path(v).resolve()) if k in _PATH_FIELDS and v else v for k, v in trial.items()}


def default_sweep_name(task: str, budget_usd: float, n_seed_labels: int) -> str:
    return f"{task}-B{budget_usd:g}-N{n_seed_labels}"
