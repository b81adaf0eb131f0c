"""`sweep plan`'s pilots, run for real: each round's pilots become `sweep grid` sweeps (Ray
Tune, Optuna, MLflow) derived from one base grid config, and are read back as rows for the
decision procedure (`sweep.decide.plan`), which stays free of Ray."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from sweep.config import SweepConfig
from sweep.decide.plan import Pilot, Plan, PlanSettings, Ran, Runner, plan
from sweep.engine.tuner import run_sweep
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.results import TrialRow, finished_trials
from sweep.tracking.schema import trial_spent_usd


def grid_blocks(pilots: Sequence[Pilot]) -> list[tuple[str, list[int], list[int]]]:
    """Pilots as grid sweeps: the annotation pilots, then the distillation ones (one cross
    product of teachers and pool sizes, or one sweep per teacher)."""
    blocks = []
    annotation = sorted({p.n_labels for p in pilots if not p.n_unlabelled})
    if annotation:
        blocks.append(("a", annotation, [0]))
    distil = {(p.n_labels, p.n_unlabelled) for p in pilots if p.n_unlabelled}
    teachers = sorted({n for n, _ in distil})
    sizes = sorted({u for _, u in distil})
    if len(distil) == len(teachers) * len(sizes):
        return blocks + ([("d", teachers, sizes)] if distil else [])
    return blocks + [(f"d{n}", [n], sorted(u for m, u in distil if m == n)) for n in teachers]


def pilot_sweep(
    base: SweepConfig,
    name: str,
    labels: list[int],
    unlabelled: list[int],
    allowance_usd: float,
    left_usd: float,
) -> SweepConfig:
    """One block of pilots as a grid sweep of `base`'s task, stores and recipe."""
    return dataclasses.replace(
        base,
        name=name,
        grid_labels=labels,
        grid_unlabelled=unlabelled,
        n_trials=len(labels) * len(unlabelled),
        compute_allowance_usd=allowance_usd,
        max_spend_usd=left_usd,
        # A pilot is wanted for its final dev score: the quick dev scores on the way (five by
        # default, each on up to 200 dev rows) cost an annotation pilot over half its time,
        # and a test score is not what the plan decides on.
        trial={**base.trial, "n_reports": 0, "score_test": False},
    )


def _spent_usd(row: TrialRow) -> float:
    """What a pilot really spent (the sweep ledger; a stand-in's allocated compute)."""
    return trial_spent_usd(
        {"sweep_spent_usd": row.sweep_spent_usd, "compute_spent_usd": row.compute_spent_usd}
    )


def pilot_runner(base: SweepConfig) -> Runner:
    """A `Runner` for `plan`: each round's pilots as grid sweeps named
    `TASK-plan-STAMP-rN<block>`; no sweep starts a pilot that could take the round over what
    is left of the cap (a new sweep has no costliest trial to go by: the round's own stands
    in for it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rounds = iter(range(1, 1000))

    def run(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        n, rows, failed_usd = next(rounds), list[TrialRow](), 0.0
        for kind, labels, unlabelled in grid_blocks(pilots):
            spent = [_spent_usd(r) for r in rows]
            left_usd = cap_usd - sum(spent) - failed_usd
            if left_usd <= 0 or left_usd < max(spent, default=0.0):
                break
            name = f"{base.task}-plan-{stamp}-r{n}{kind}"
            cfg = pilot_sweep(base, name, labels, unlabelled, allowance_usd, left_usd)
            run_sweep(cfg)
            tracker = Tracker(cfg.tracking)
            rows += finished_trials(tracker, cfg.task, cfg.name)
            failed = tracker.trial_runs(task=cfg.task, sweep=cfg.name, status="FAILED")
            failed_usd += sum(r.data.metrics.get("sweep_spent_usd", 0.0) for r in failed)
        return Ran(tuple(rows), failed_usd)

    return run


def run_plan(settings: PlanSettings, base: SweepConfig, known: Sequence[TrialRow] = ()) -> Plan:
    """`sweep plan` from Python: the decision procedure with real pilots, run as grid sweeps
    of `base` (a grid config naming the task, stores, recipe and prices; its own grid points
    are replaced by each round's pilots). `known`: finished trials priced as the pilots."""
    return plan(pilot_runner(base), settings, known)
