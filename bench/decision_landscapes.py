"""The decision benchmark's landscapes, baselines and scoring (`bench/decision_cost.py`):
a measured grid and its pricing, the dense reference at B, the null baselines, `sweep plan`
run on the grid with pilots read off it (noise added where asked), and the result file."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_file import write_result_file
from objectives.standins import ReplayTable, replay_trial
from objectives.trial_config import TrialConfig
from sweep.decide import prior
from sweep.decide.plan import Pilot, Plan, PlanSettings, Ran, Runner, format_plan, plan
from sweep.tracking.results import row_from_result

REFERENCE = np.linspace(0.0, 1.0, 201)
FIXED = tuple(i / 10 for i in range(11))
WITHIN = 0.01  # one point of score


@dataclass(frozen=True)
class Grid:
    """A measured landscape and what prices it (its task's price per label; its compute
    prices are the ones fitted to its own compute_usd column)."""

    name: str
    table: ReplayTable
    task: str
    usd_per_label: float
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    path: Path | None = field(default=None, compare=False)

    def setting(self, budget: float | None, seed_labels: int | None) -> dict[str, Any]:
        budget = budget if budget is not None else self.defaults.get("budget_usd")
        seeds = seed_labels if seed_labels is not None else self.defaults.get("n_seed_labels")
        if budget is None or seeds is None:
            raise SystemExit(f"decision_cost: {self.name} has no setting; pass --budget and "
                             "--seed-labels.")  # fmt: skip
        return {"task": self.task, "budget_usd": float(budget), "n_seed_labels": int(seeds),
                "usd_per_label": self.usd_per_label}  # fmt: skip


def load_grid(path: Path, args: argparse.Namespace | None = None) -> Grid:
    """A grid file, priced by its `.json` beside it, else by the task its name (or --task)
    names."""
    from objectives.tasks import get_task

    sidecar = path.with_suffix(".json")
    own: dict[str, Any] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    task = (args.task if args and args.task else None) or own.get("task") or path.stem.lower()
    price = (args.usd_per_label if args else None) or own.get("usd_per_label")
    if price is None:
        try:
            price = get_task(task).usd_per_label
        except ValueError as exc:
            raise SystemExit(
                f"decision_cost: {path}: {exc} Or put a .json setting beside it."
            ) from None
    return Grid(path.stem, ReplayTable.from_csv(path), task, float(price), own, path)


@functools.cache
def shipped_grids() -> tuple[Grid, ...]:
    """The package's landscapes as priced grids, read once (every cell's baseline asks)."""
    return tuple(load_grid(prior.LANDSCAPES / f"{k.name}.csv") for k in prior.shipped())


@dataclass(frozen=True)
class Truth:
    """The dense reference: every share's noise-free score at the setting."""

    grid: Grid
    setting: dict[str, Any]

    @cached_property
    def scores(self) -> np.ndarray:
        return np.array([self.at(float(f)) for f in REFERENCE])

    def at(self, fraction: float) -> float:
        cfg = TrialConfig(**self.setting, compute_fraction=round(float(fraction), 6))
        return replay_trial(cfg, table=self.grid.table).score

    def regret(self, fraction: float) -> float:
        return float(self.scores.max() - self.scores[int(np.argmin(abs(REFERENCE - fraction)))])

    @property
    def best_fraction(self) -> float:
        return float(REFERENCE[int(np.argmax(self.scores))])

    @property
    def random_regret(self) -> float:
        """A share drawn at random: its expected regret."""
        return float(np.mean(self.scores.max() - self.scores))

    @property
    def flatness(self) -> float:
        return float(np.mean(self.scores >= self.scores.max() - WITHIN))


@contextlib.contextmanager
def leave_out(
    name: str, table: ReplayTable | None = None, extra: Sequence[prior.Known] = ()
) -> Iterator[None]:
    """Within the block (a benchmark's process), the shipped landscapes are those of other
    tasks, by name and by near-content, plus `extra`: what is judged never informs its own
    prior, in a sampler or a query built inside the block."""
    original = prior._packaged
    kept = tuple(
        k
        for k in (*original(), *extra)
        if k.name != name and (table is None or not prior.same_landscape(k.table, table))
    )
    prior._packaged = lambda: kept  # type: ignore[assignment]
    try:
        yield
    finally:
        prior._packaged = original  # type: ignore[assignment]


def runner(grid: Grid, setting: dict[str, Any], noise: float, seed: int) -> Runner:
    """Pilots read off the grid (Gaussian noise of SD `noise` on each score), each charged
    its allocation's compute as the paper's meter charges a trial (teacher included: the
    plan itself pays a teacher that an earlier pilot trained only once)."""
    rng = np.random.default_rng(seed)

    def run(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        rows = []
        for p in pilots:
            # As a grid sweep prices it: an annotation pilot gets no compute allowance.
            allowance = allowance_usd if p.n_unlabelled else 0.0
            point = {"budget_usd": p.n_labels * grid.usd_per_label + allowance,
                     "n_seed_labels": 0, "compute_fraction": 0.0, "n_labels": p.n_labels,
                     "max_unlabelled": p.n_unlabelled}  # fmt: skip
            result = replay_trial(TrialConfig(**{**setting, **point}), table=grid.table)
            if noise:
                score = float(np.clip(result.score + rng.normal(0.0, noise), 0.0, 1.0))
                result = dataclasses.replace(result, score=score)
            rows.append(row_from_result(result, f"pilot-{p.n_labels}-{p.n_unlabelled}", 0.0))
        return Ran(tuple(rows))

    return run


@dataclass
class Cell:
    """One landscape at one setting: ours over seeds and every null baseline."""

    name: str
    budget: float
    seed_labels: int
    best_fraction: float
    flatness: float
    regrets: list[float]  # ours, one per noise seed
    spend_shares: list[float]
    n_pilots: float
    ours_fractions: list[float]
    printed_regrets: list[float]  # what ours printed as its expected regret
    ranges: list[tuple[float, float]]  # ours' 90 % share range
    prior_regret: float
    fixed: dict[float, float]  # every fixed share's regret
    loo: tuple[float, float]  # (share, regret): the fixed share chosen on the others
    random_regret: float
    transcript: str = ""

    @property
    def fixed_best(self) -> tuple[float, float]:
        f = min(self.fixed, key=lambda k: self.fixed[k])
        return f, self.fixed[f]

    @property
    def fixed_median(self) -> float:
        return statistics.median(self.fixed.values())


def settings(
    grid: Grid, setting: dict[str, Any], args: argparse.Namespace, pilots: bool
) -> PlanSettings:
    return PlanSettings(
        task=grid.task,
        budget_usd=setting["budget_usd"],
        seed_labels=setting["n_seed_labels"],
        usd_per_label=grid.usd_per_label,
        max_spend_usd=args.max_spend_share * setting["budget_usd"],
        cost=grid.table.cost,
        pool_cap=max(grid.table.unlabelled),
        # leave-one-out, by near-content and by name
        landscapes=prior.shipped(exclude=grid.table, exclude_name=grid.name),
        pilots=pilots,
    )


def loo_share(grid: Grid, others: Sequence[Grid], setting: dict[str, Any]) -> float:
    """The fixed share with the least mean regret on the other landscapes (each at its own
    prices, at this B and seed labels), never on `grid` itself."""
    pool = {
        id(o): o
        for o in [*others, *shipped_grids()]
        if not prior.same_landscape(o.table, grid.table) and o.name != grid.name
    }
    curves = []
    seen: list[dict[tuple[int, int], float]] = []
    for o in pool.values():
        if o.table.scores in seen:
            continue
        seen.append(o.table.scores)
        truth = Truth(o, o.setting(setting["budget_usd"], setting["n_seed_labels"]))
        curves.append([truth.regret(f) for f in FIXED])
    return FIXED[int(np.argmin(np.mean(curves, axis=0)))]


def score_cell(
    grid: Grid, setting: dict[str, Any], others: Sequence[Grid], args: argparse.Namespace
) -> Cell:
    truth = Truth(grid, setting)
    budget = setting["budget_usd"]
    runs: list[Plan] = [
        plan(
            runner(grid, setting, args.noise, seed), settings(grid, setting, args, True), seed=seed
        )
        for seed in range(args.seeds)
    ]
    alone = plan(runner(grid, setting, 0.0, 0), settings(grid, setting, args, False))
    share = loo_share(grid, others, setting)
    return Cell(
        name=grid.name,
        budget=budget,
        seed_labels=setting["n_seed_labels"],
        best_fraction=truth.best_fraction,
        flatness=truth.flatness,
        regrets=[truth.regret(r.answer.compute_fraction) for r in runs],
        spend_shares=[r.spent_usd / budget for r in runs],
        n_pilots=statistics.fmean(len(r.steps) for r in runs),
        ours_fractions=[r.answer.compute_fraction for r in runs],
        printed_regrets=[r.answer.expected_regret for r in runs],
        ranges=[r.answer.fraction_interval for r in runs],
        prior_regret=truth.regret(alone.answer.compute_fraction),
        fixed={f: truth.regret(f) for f in FIXED},
        loo=(share, truth.regret(share)),
        random_regret=truth.random_regret,
        transcript=format_plan(runs[0]),
    )


def fixed_share_in_sample(cells: Sequence[Cell]) -> tuple[float, float]:
    """The best single fixed share over the cells (chosen on them: an optimistic null)."""
    means = {f: statistics.fmean(c.fixed[f] for c in cells) for f in FIXED}
    f = min(means, key=lambda k: means[k])
    return f, means[f]


def mean_sd(values: Sequence[float]) -> str:
    """Mean (and SD over seeds, when there are several), in points or per cent."""
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f}" + (f" ±{100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")


def paired_interval(ours: Sequence[float], other: Sequence[float]) -> tuple[float, float]:
    """90 % bootstrap interval of the mean paired difference (scipy)."""
    from scipy.stats import bootstrap

    diff = np.array(ours) - np.array(other)
    if len(diff) < 2 or np.all(diff == diff[0]):
        return float(diff.mean()), float(diff.mean())
    res = bootstrap((diff,), np.mean, confidence_level=0.9, random_state=0, method="percentile")
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def write_result(
    benchmark: str, args: argparse.Namespace, cells: Sequence[Cell], summary: Sequence[str]
) -> Path:
    figures = [{k: v for k, v in asdict(c).items() if k != "transcript"} for c in cells]
    for f, c in zip(figures, cells, strict=True):
        f["fixed"] = {f"{k:.1f}": v for k, v in c.fixed.items()}
    setting = {k: v for k, v in vars(args).items()}
    return write_result_file(benchmark, setting, {"summary": list(summary), "cells": figures})
