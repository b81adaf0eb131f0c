"""A sweep's mode: what one trial is a point of, and everything that follows from it.

- `BudgetSearch`: shares `f` of one budget, searched (the paper's question at one B);
- `BudgetRange`: the budget searched too, in [low, high]; two objectives (score up, dollars
  down) and a Pareto set instead of one best trial;
- `Grid`: the paper's labelled x unlabelled grid, each point once; a point buys its labels
  and may spend up to `allowance_usd` on compute; there is no sweep-wide budget.

`SweepConfig.mode` derives the mode from its fields (which are what the study stores, so a
resumed sweep finds its mode again); every module that behaves differently by mode asks the
mode object, never which mode it is. Light: the engine turns `optuna_grid` and `suggest`
into Optuna's objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

Metrics = tuple[tuple[str, ...], tuple[str, ...]]


class Mode(Protocol):
    @property
    def tag(self) -> str:
        """The MLflow tag `doa.mode` of its trials."""

    @property
    def metrics(self) -> Metrics:
        """(metrics, "max"/"min" each) the study optimises."""

    @property
    def has_budget(self) -> bool:
        """Whether the sweep splits a budget of its own (a grid's points each have theirs)."""

    def lowest_budget_usd(self, budget_usd: float) -> float:
        """The smallest budget a trial may get: it must buy at least one label."""

    def trial_budget_usd(
        self, config: Mapping[str, Any], budget_usd: float, usd_per_label: float
    ) -> float:
        """The budget of one trial, from its sampled point."""

    def point_fields(self, config: Mapping[str, Any], budget_usd: float) -> dict[str, Any]:
        """TrialConfig fields the point sets beyond its share and budget."""

    def run_name(self, task: str, config: Mapping[str, Any], default: str) -> str:
        """The trial run's name in MLflow (`default`: task, budget, share and seeds)."""

    def optuna_grid(self) -> dict[str, list[Any]] | None:
        """The grid Optuna walks whatever sampler was named; None: the sampler searches."""

    def suggest(self, trial: Any) -> dict[str, Any] | None:
        """Suggest the mode's own parameters on an Optuna trial; None: the named space
        suggests the share (after what this suggested)."""

    def first_point(self, share: float) -> dict[str, Any] | None:
        """The parameters of a first point at compute share `share`; None: no first points."""

    def planned_points(self) -> list[dict[str, Any]]:
        """Every point the sweep must measure once (a failed one is measured again)."""

    def most_labels(self, n_seed_labels: int) -> int:
        """The most labels one trial trains on, before any is bought."""

    def sweep_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The sweep's config as its parent run's params."""


@dataclass(frozen=True)
class BudgetSearch:
    tag: ClassVar[str] = "budget"
    metrics: ClassVar[Metrics] = (("score",), ("max",))
    has_budget: ClassVar[bool] = True

    def lowest_budget_usd(self, budget_usd: float) -> float:
        return budget_usd

    def trial_budget_usd(
        self, config: Mapping[str, Any], budget_usd: float, usd_per_label: float
    ) -> float:
        return float(config.get("budget_usd", budget_usd))

    def point_fields(self, config: Mapping[str, Any], budget_usd: float) -> dict[str, Any]:
        return {}

    def run_name(self, task: str, config: Mapping[str, Any], default: str) -> str:
        return default

    def optuna_grid(self) -> dict[str, list[Any]] | None:
        return None

    def suggest(self, trial: Any) -> dict[str, Any] | None:
        return None

    def first_point(self, share: float) -> dict[str, Any] | None:
        return {"compute_fraction": share}

    def planned_points(self) -> list[dict[str, Any]]:
        return []

    def most_labels(self, n_seed_labels: int) -> int:
        return n_seed_labels

    def sweep_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return params


@dataclass(frozen=True)
class BudgetRange(BudgetSearch):
    """`SweepConfig` checks `0 < low_usd < high_usd`."""

    low_usd: float = 0.0
    high_usd: float = 0.0
    metrics: ClassVar[Metrics] = (("score", "practitioner_usd"), ("max", "min"))

    def lowest_budget_usd(self, budget_usd: float) -> float:
        return self.low_usd

    def suggest(self, trial: Any) -> dict[str, Any] | None:
        trial.suggest_float("budget_usd", self.low_usd, self.high_usd, log=True)
        return None

    def first_point(self, share: float) -> dict[str, Any] | None:
        return {"compute_fraction": share, "budget_usd": self.low_usd}


@dataclass(frozen=True)
class Grid:
    labels: Sequence[int]
    unlabelled: Sequence[int]
    allowance_usd: float
    tag: ClassVar[str] = "grid"
    metrics: ClassVar[Metrics] = (("score",), ("max",))
    has_budget: ClassVar[bool] = False

    def lowest_budget_usd(self, budget_usd: float) -> float:
        return budget_usd

    def trial_budget_usd(
        self, config: Mapping[str, Any], budget_usd: float, usd_per_label: float
    ) -> float:
        """Its labels, plus the allowance where it has unlabelled examples to distil."""
        allowance = self.allowance_usd if int(config["n_unlabelled"]) > 0 else 0.0
        return round(int(config["n_labels"]) * usd_per_label + allowance, 6)

    def point_fields(self, config: Mapping[str, Any], budget_usd: float) -> dict[str, Any]:
        n_unlabelled = int(config["n_unlabelled"])
        fields: dict[str, Any] = {
            "n_labels": int(config["n_labels"]),
            "compute_fraction": self.allowance_usd / budget_usd if n_unlabelled else 0.0,
        }
        if n_unlabelled:
            fields["max_unlabelled"] = n_unlabelled
        return fields

    def run_name(self, task: str, config: Mapping[str, Any], default: str) -> str:
        return f"{task}/L={config['n_labels']}/U={config['n_unlabelled']}"

    def optuna_grid(self) -> dict[str, list[Any]] | None:
        return {"n_labels": list(self.labels), "n_unlabelled": list(self.unlabelled)}

    def suggest(self, trial: Any) -> dict[str, Any] | None:
        trial.suggest_categorical("n_labels", list(self.labels))
        trial.suggest_categorical("n_unlabelled", list(self.unlabelled))
        return {}

    def first_point(self, share: float) -> dict[str, Any] | None:
        return None

    def planned_points(self) -> list[dict[str, Any]]:
        return [{"n_labels": n, "n_unlabelled": u} for n in self.labels for u in self.unlabelled]

    def most_labels(self, n_seed_labels: int) -> int:
        return max([n_seed_labels, *self.labels])

    def sweep_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != "budget_usd"}  # each point has its own
