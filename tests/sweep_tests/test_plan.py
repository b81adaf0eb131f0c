"""The cheap path to a split (sweep/decide/plan.py): pilots designed within the cap, the teacher's
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
from sweep.decide import frontier
from sweep.decide.plan import Pilot, PlanSettings, Ran, first_round, format_plan, plan
from sweep.tracking.results import TrialRow, row_from_result

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

    def __call__(self, pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        return Ran(tuple(self.rows(pilots, allowance_usd, cap_usd)))

    def rows(
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


def test_pilots_stay_within_the_training_split_and_the_pool() -> None:
    # The README's example on tests/data: B buys 2,425 labels, the split holds 1,000 rows,
    # the recipe caps pools at 640 (two sizes still: one measures nothing about U).
    s = _settings(label_cap=1000, pool_cap=640)
    pilots = first_round(s, FEVER)
    assert max(p.n_labels for p in pilots) == 1000
    assert sorted({p.n_unlabelled for p in pilots if p.n_unlabelled}) == [160, 640]
    with pytest.raises(ValueError, match="max_unlabelled >= 16"):
        _settings(pool_cap=0)
    with pytest.raises(ValueError, match="50 rows are fewer than the 100 labels"):
        _settings(label_cap=50)


def _full(fraction: float) -> float:
    """A full-size trial at B = $300 on the closed-form landscape."""
    return synthetic_trial(TrialConfig("fever", 300.0, 100, fraction), cost=FEVER).score


def _best() -> float:
    """The dense reference: the best full-size split at B = $300."""
    return max(_full(f / 200) for f in range(201))


def test_a_plan_never_spends_more_than_its_cap_and_answers_near_the_best() -> None:
    for cap in (10.0, 30.0):
        runner = SyntheticRunner()
        result = plan(runner, _settings(max_spend_usd=cap))
        assert result.spent_usd <= cap + 1e-6
        assert result.rounds and result.recommendation is not None
    best, rec = _best(), result.recommendation
    assert rec is not None and _full(rec.compute_fraction) >= best - 0.01
    assert _full(0.0) < best - 0.03  # the answer is not the trivial annotate-only one
    assert result.spent_usd <= 0.1 * 300


def test_a_warm_start_shape_needs_one_teacher_and_half_the_money() -> None:
    # A finished task: the paper's grid on the same closed-form landscape.
    grid = [Pilot(n, u) for n in (100, 500, 1000, 5000) for u in (0, 10_000, 100_000)]
    shape = frontier.fit_shape(SyntheticRunner().rows(grid), "fever")
    cold = plan(SyntheticRunner(), _settings())
    warm = plan(SyntheticRunner(), _settings(shape=shape))
    pilots = warm.rounds[0].pilots
    assert len(pilots) == frontier.SHAPED_MIN_TRIALS < len(cold.rounds[0].pilots)
    assert len({p.n_labels for p in pilots if p.n_unlabelled}) == 1
    assert 0 < warm.spent_usd <= 0.6 * cold.spent_usd
    rec = warm.recommendation
    assert rec is not None and _full(rec.compute_fraction) >= _best() - 0.01
    assert "warm start: the curve's shape from fever's 12 trials" in format_plan(warm)
    # A shape whose exponent hit the end of its range (a log-linear task's) is flagged.
    edge = frontier.Shape(0.1, 0.0, "loglinear", 12)
    assert not shape.at_edge and edge.at_edge
    doubtful = dataclasses.replace(warm, settings=dataclasses.replace(warm.settings, shape=edge))
    assert "a doubtful prior" in format_plan(doubtful) and "doubtful" not in format_plan(warm)
    # Once the task's own trials carry a curve, a shape that predicts them worse gives way.
    own = SyntheticRunner().rows(grid)
    dropped = plan(SyntheticRunner(), _settings(shape=edge, fraction_width=1.0), known=own)
    assert dropped.model is not None and dropped.model.curve.alpha != edge.alpha
    assert "it was dropped" in format_plan(dropped) and "dropped" not in format_plan(warm)
    # Without the shape the same five pilots cannot carry a curve.
    with pytest.raises(frontier.NotEnoughTrials, match="need at least 8 trials"):
        frontier.fit(SyntheticRunner().rows(pilots), "fever")


def test_a_cap_that_cannot_pay_one_teacher_runs_nothing_and_says_why() -> None:
    runner = SyntheticRunner()
    result = plan(runner, _settings(max_spend_usd=1.0))  # FEVER's teacher: $3.43 at 100
    assert runner.pilots == [] and result.spent_usd == 0 and result.recommendation is None
    text = format_plan(result)
    assert "costs $3.44, more than the cap of $1.00" in text and "raise --max-spend" in text


def test_a_teacher_dearer_than_an_even_share_of_the_cap_still_distils() -> None:
    runner, allowances, rows = SyntheticRunner(), [], []

    def recording(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        allowances.append(allowance_usd)
        rows.extend(runner.rows(pilots, allowance_usd, cap_usd))
        return Ran(tuple(rows[-len(pilots) :]))

    plan(recording, _settings(max_spend_usd=5.0, refine=False))  # two pilots: $2.50 each
    assert FEVER.teacher_usd(100) < allowances[0] <= 5.0
    assert any(r.n_unlabelled > 0 for r in rows)


def test_a_round_the_cap_cut_short_ends_the_plan_and_says_so() -> None:
    runner = SyntheticRunner()

    def capped(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        # The cap stopped the rest, after a third pilot failed having spent $1.50.
        return Ran(tuple(runner.rows(pilots[:2], allowance_usd, cap_usd)), failed_usd=1.5)

    result = plan(capped, _settings(cost=None))  # unknown prices: no fit, nothing to design
    assert len(runner.pilots) == 2 and result.recommendation is None
    assert "round 1 finished 2 of its 8 pilots" in format_plan(result)
    # The two finished (annotation) pilots spent nothing; the failed one's time is counted.
    assert result.spent_usd == pytest.approx(1.5)


def test_stored_trials_are_reused_and_a_narrow_answer_runs_nothing() -> None:
    first = plan(SyntheticRunner(), _settings())
    rows = SyntheticRunner().rows([p for r in first.rounds for p in r.pilots])
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


def test_a_warm_start_from_a_task_without_trials_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    args = ["plan", "--task", "fever", "--budget", "300", "--warm-start", "nq"]
    assert main([*args, "--objective", "synthetic", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--warm-start 'nq'" in err and "0 finished" in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_sweep_plan_reads_its_options_from_a_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    file = tmp_path / "plan.toml"
    file.write_text(
        'task = "fever"\nbudget = 300\nseed_labels = 100\nmeter = "paper"\n'
        'objective = "synthetic"\nmax_spend = 0.01\n[prices]\nusd_per_device_hour = 3.0\n'
    )
    # The file's paper meter gives known prices, so its one-cent cap pays for no pilot.
    assert main(["plan", "--config", str(file), "--root", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert "plan for fever at B=$300 with 100 seed labels" in out and "raise --max-spend" in out
    # The plan names its own sweeps: a --name is refused, a file's `name` (for `run`) ignored.
    assert main(["plan", "--config", str(file), "--name", "mine"]) == 2
    assert "sweep plan takes no --name" in capsys.readouterr().err
    file.write_text(file.read_text().replace("max_spend", 'name = "x"\ntrials = 9\nmax_spend'))
    assert main(["plan", "--config", str(file), "--root", str(tmp_path / "runs")]) == 1
    assert not (tmp_path / "runs").exists()  # a plan that runs nothing writes nothing


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")  # in process: the suite's Ray, not one per plan
def test_sweep_plan_runs_pilots_through_the_sweep_and_says_what_deciding_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    def plan_(*extra: str) -> tuple[int, str, str]:
        args = ["plan", "--task", "fever", "--budget", "300", "--seed-labels", "100"]
        common = ["--objective", "synthetic", "--meter", "paper", "--root", str(tmp_path)]
        code = main([*args, *common, *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = plan_("--max-unlabelled", "100000", "--max-spend", "30")
    assert code == 0, out + err
    assert "round 1: 8 pilots" in out and "recommended: spend" in out
    spent = float(out.split("spent deciding: $")[1].split(" ")[0])
    assert 0 < spent <= 30
    # The pilots are real sweeps in the store; a second plan starts from them, and takes
    # its curve's shape from them too (a warm start reads the same store).
    code, out, err = plan_("--warm-start", "fever")
    assert code == 0, out + err
    assert "started from 9 finished trials" in out or "started from 8" in out
    assert "warm start: the curve's shape from fever's" in out
    # Trials priced otherwise are left out, said, not fitted together (which would raise
    # after the pilots were paid for); here the cap then pays for no pilot at all.
    code, out, err = plan_("--usd-per-device-hour", "3", "--max-spend", "0.01")
    assert code == 1, out + err
    assert "left out" in err and "priced otherwise" in err
    assert "no recommendation" in out and "raise --max-spend" in out
