"""Finished trial runs as MLflow returns them, and a store that holds them: what
`best_allocations` and the other readers of `sweep.tracking.results` read, without MLflow."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def logged_run(
    run_id: str, fraction: float, metrics: dict[str, float], tags: dict[str, str], start: int
) -> Any:
    """One trial run: its metrics, its tags and the compute fraction as its one param."""
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, start_time=start),
        data=SimpleNamespace(
            metrics=metrics, params={"compute_fraction": str(fraction)}, tags=tags
        ),
    )


class RunStore:
    """A store whose trial runs are the ones given, whatever the task or sweep asked."""

    def __init__(self, runs: list[Any]) -> None:
        self.runs = runs

    def trial_runs(self, task: str | None = None, sweep: str | None = None) -> list[Any]:
        return self.runs
