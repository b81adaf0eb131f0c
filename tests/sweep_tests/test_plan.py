"""The cheap path to a split (sweep/plan.py): pilots designed within the cap, the teacher's
ceiling in the frontier, reuse of stored trials, and `sweep plan` end to end."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.standins import synthetic_trial
from objectives.trial_config import TrialConfig
from sweep import frontier
from sweep.plan import Pilot, PlanSettings, first_round, plan
from sweep.results import TrialRow, row_from_result

FEVER = PAPER_COST_MODELS["fever"]
ROOT = Path(__file__).resolve().parents[2]


def _settings(**overrides: object) -> PlanSettings:
    values: dict[str, object] = {
        "task": "fever",
        "budget_usd": 300.0,
        "seed_labels": 100,
        "usd_per_label": 0.129,
        "max_spend_usd": 30.0,
        "cost": FEVER,
        "pool_cap": 100_000,
    }
    return PlanSettings(**{**values, **overrides})  # type: ignore[arg-type]


class SyntheticRunner:
    """Pilots on the closed-form landscape, charged as the stage cache would: a teacher once
    per label count."""

    def __init__(self) -> None:
        self.pilots: list[Pilot] = []
        self.trained: set[int] = set()

    def __call__(
        self, pilots: Sequence[Pilot], allowance_usd: float = math.inf, cap_usd: float = math.inf
    ) -> list[TrialRow]:
        rows = []
        for p in pilots:
            reused = p.n_labels in self.trained
            cap = allowance_usd + (FEVER.teacher_usd(p.n_labels) if reused else 0.0)
            full = FEVER.usd(p.n_labels, p.n_unlabelled) + 1e-6
            allowance = min(full, cap) if p.n_unlabelled else 0.0
            cfg = TrialConfig(
                task="fever",
                budget_usd=p.n_labels * 0.129 + allowance,
                n_seed_labels=0,
                compute_fraction=0.0,
                n_labels=p.n_labels,
                max_unlabelled=p.n_unlabelled or None,
            )
            result = synthetic_trial(cfg, cost=FEVER)
            spent = result.compute_spent_usd
            if p.n_unlabelled and reused:
                spent -= FEVER.teacher_usd(p.n_labels)
            if p.n_unlabelled:
                self.trained.add(p.n_labels)
            self.pilots.append(p)
            rows.append(row_from_result(result, f"pilot-{len(self.pilots)}", spent))
        return rows


def test_the_first_round_fits_the_cap_and_reaches_what_the_budget_buys() -> None:
    s = _settings()
    pilots = first_round(s, FEVER)
    assert len(pilots) >= frontier.MIN_TRIALS
    assert max(p.n_labels for p in pilots if not p.n_unlabelled) == s.labels_at_zero == 2425
    teachers = {p.n_labels for p in pilots if p.n_unlabelled}
    estimate = sum(FEVER.teacher_usd(n) for n in teachers) + sum(
        FEVER.distillation_usd(p.n_unlabelled) for p in pilots
    )
    assert estimate <= 0.6 * s.max_spend_usd + 1e-6
    assert len(teachers) == 2 and len({p.n_unlabelled for p in pilots}) == 3


def test_a_plan_never_spends_more_than_its_cap_and_answers_near_the_best() -> None:
    for cap in (10.0, 30.0):
        runner = SyntheticRunner()
        result = plan(runner, _settings(max_spend_usd=cap))
        assert result.spent_usd <= cap + 1e-6
        assert result.rounds and result.recommendation is not None

    # Dense reference on the same landscape: the best full-size split at B = $300.
    def full(fraction: float) -> float:
        cfg = TrialConfig("fever", 300.0, 100, fraction)
        return synthetic_trial(cfg, cost=FEVER).score

    best = max(full(f / 200) for f in range(201))
    rec = result.recommendation
    assert rec is not None and full(rec.compute_fraction) >= best - 0.01
    assert full(0.0) < best - 0.03  # the answer is not the trivial annotate-only one
    assert result.spent_usd <= 0.1 * 300


def test_stored_trials_are_reused_and_a_narrow_answer_runs_nothing() -> None:
    first = plan(SyntheticRunner(), _settings())
    rows = SyntheticRunner()([p for r in first.rounds for p in r.pilots])
    again = SyntheticRunner()
    second = plan(again, _settings(fraction_width=1.0), known=rows)
    assert again.pilots == [] and second.spent_usd == 0.0
    assert second.reused == len(rows) and second.recommendation is not None


def test_the_teacher_caps_a_distilled_student() -> None:
    # Students whose distillation gain would outrun a weak teacher's own score.
    rows = []
    for n_labels in (50, 100, 200, 400):
        teacher = 0.6 + 0.05 * math.log2(n_labels / 50)
        for n_unlabelled, gain in ((0, 0.0), (1000, 0.15), (4000, 0.3)):
            rows.append(
                TrialRow(
                    run_id=f"{n_labels}-{n_unlabelled}",
                    sweep="s",
                    task="fever",
                    budget_usd=1.0,
                    n_seed_labels=0,
                    compute_fraction=0.5,
                    score=0.5 + 0.02 * math.log2(n_labels / 50) + gain,
                    trial_number=None,
                    start_time_ms=0,
                    grid=True,
                    n_labels_used=n_labels,
                    n_unlabelled=n_unlabelled,
                    n_new_labels=n_labels,
                    annotation_usd=n_labels * 0.129,
                    compute_spent_usd=1 + n_unlabelled / 1000,
                    device_hours=(1 + n_unlabelled / 1000) / 1.875,
                    teacher_score=teacher if n_unlabelled else None,
                )
            )
    capped = frontier.fit(rows, "fever", n_boot=20)
    free = frontier.fit(rows, "fever", n_boot=20, ceiling=False)
    assert capped.teacher is not None and free.teacher is None
    labelled, unlabelled = np.array([50.0]), np.array([100_000.0])
    teacher_at_50 = capped.teacher.predict(labelled, np.zeros(1))[0]
    assert teacher_at_50 == pytest.approx(0.6, abs=0.02)
    assert capped.predict(labelled, unlabelled)[0] <= teacher_at_50 + frontier.TEACHER_MARGIN
    assert free.predict(labelled, unlabelled)[0] > teacher_at_50 + 0.05


@pytest.mark.parametrize(
    ("field", "value"),
    [("budget_usd", -1.0), ("max_spend_usd", 0.0), ("usd_per_label", math.nan)],
)
def test_bad_settings_name_the_value(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(_settings(), **{field: value})


def _sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_sweep_plan_rejects_a_negative_budget(tmp_path: Path) -> None:
    run = _sweep("plan", "--task", "fever", "--budget", "-5", cwd=tmp_path)
    assert run.returncode == 2
    assert "budget_usd > 0" in run.stderr and "-5" in run.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.slow
def test_sweep_plan_runs_pilots_through_the_sweep_and_says_what_deciding_cost(
    tmp_path: Path,
) -> None:
    args = ("plan", "--task", "fever", "--budget", "300", "--seed-labels", "100")
    run = _sweep(
        *args, "--objective", "synthetic", "--meter", "paper", "--max-unlabelled", "100000",
        "--max-spend", "30", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "round 1: 8 pilots" in out and "recommended: spend" in out
    spent = float(out.split("spent deciding: $")[1].split(" ")[0])
    assert 0 < spent <= 30
    # The pilots are real sweeps in the store; a second plan starts from them.
    again = _sweep(*args, "--objective", "synthetic", "--meter", "paper", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started from 9 finished trials" in again.stdout or "started from 8" in again.stdout
