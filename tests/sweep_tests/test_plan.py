"""`sweep plan` (sweep/decide/plan.py, sweep/decide/prior.py): the prior's answer from measured
landscapes, pilots only where they are worth their price, the decision's own accounting, the
leave-one-out rule, and the command end to end."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.standins import ReplayTable
from objectives.trial_config import TrialConfig, TrialResult
from sweep.decide import prior
from sweep.decide.plan import (
    Pilot,
    PlanSettings,
    Ran,
    Runner,
    format_plan,
    label_charge_usd,
    plan,
)
from sweep.tracking.results import TrialRow, row_from_result

FEVER = PAPER_COST_MODELS["fever"]
ROOT = Path(__file__).resolve().parents[2]
LABELS = (100, 300, 1000, 3000, 10000)
POOLS = (0, 10000, 100000)


def _grid(path: Path, score: object) -> prior.Known:
    """A made-up landscape on the paper's grid, priced like FEVER."""
    lines = ["labels,unlabelled,compute_usd,score"]
    for n in LABELS:
        for u in POOLS:
            usd = FEVER.usd(n, u) if u else 0.0
            lines.append(f"{n},{u},{usd:.4f},{score(n, u):.4f}")  # type: ignore[operator]
    path.write_text("\n".join(lines) + "\n")
    return prior.Known(path.stem, ReplayTable.from_csv(path))


Worlds = tuple[prior.Known, prior.Known]


@pytest.fixture
def two_worlds(tmp_path: Path) -> Worlds:
    """Labels matter (the best share is small) or distilled examples do (it is large)."""
    labels = _grid(
        tmp_path / "labels.csv",
        lambda n, u: 0.5 + 0.12 * math.log10(n / 100) + (0.01 if u else 0.0),
    )
    pool = _grid(
        tmp_path / "pool.csv",
        lambda n, u: 0.5 + 0.01 * math.log10(n / 100) + 0.08 * math.log10(1 + u / 1000),
    )
    return labels, pool


def _settings(known: Sequence[prior.Known], **overrides: object) -> PlanSettings:
    values: dict[str, object] = {
        "task": "fever", "budget_usd": 300.0, "seed_labels": 100, "usd_per_label": 0.129,
        "max_spend_usd": 30.0, "cost": FEVER, "pool_cap": 100000, "landscapes": tuple(known),
    }  # fmt: skip
    values.update(overrides)
    return PlanSettings(**values)  # type: ignore[arg-type]


def _row(truth: prior.Known, n: int, u: int, name: str = "") -> TrialRow:
    """A pilot read off `truth`: its compute in B's meter, and a real ledger of 1 cent."""
    usd = FEVER.usd(n, u) if u else 0.0
    fields = {**_result_fields(n, u), "score": float(truth.table.score(n, u))}
    result = TrialResult(**{**fields, "compute_spent_usd": usd, "sweep_spent_usd": 0.01})
    return row_from_result(result, name or f"pilot-{n}-{u}", 0.01)


def _result_fields(n: int, u: int) -> dict[str, object]:
    from objectives.standins import replay_trial

    table = ReplayTable.from_csv(prior.LANDSCAPES / "fever.csv")
    cfg = TrialConfig(
        task="fever", budget_usd=n * 0.129 + (FEVER.usd(n, u) + 1e-6 if u else 0.0),
        n_seed_labels=0, compute_fraction=0.0, n_labels=n, max_unlabelled=u,
    )  # fmt: skip
    return replay_trial(cfg, table=table).to_dict()


def _runner(truth: prior.Known, ran: list[Pilot]) -> Runner:
    def run(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        ran.extend(pilots)
        return Ran(tuple(_row(truth, p.n_labels, p.n_unlabelled) for p in pilots))

    return run


def test_the_first_answer_is_free_and_comes_from_the_prior(two_worlds: Worlds) -> None:
    labels, _ = two_worlds
    ran: list[Pilot] = []
    result = plan(_runner(labels, ran), _settings(two_worlds, pilots=False))
    assert ran == [] and result.spent_usd == 0 and result.steps == ()
    assert result.answer == result.prior_answer
    low, high = result.answer.fraction_interval
    assert low <= result.answer.compute_fraction <= high
    # Each world alone says where its own best share lies: few dollars of compute where
    # labels matter, most of B where distilled examples do.
    alone = [
        plan(_runner(k, []), _settings([k], pilots=False)).answer.compute_fraction
        for k in two_worlds
    ]
    assert alone[0] < 0.15 < 0.25 < alone[1]
    text = format_plan(result)
    assert "prior (landscapes labels, pool; no pilot)" in text
    assert "no score predicted until a trial of the task has run" in text
    assert "stopped: --pilots 0" in text


# Where a pilot can stand where the decision is made: the seed labels (owned, free) are
# within a factor 1.5 of the labels the answer buys.
NEAR = {"budget_usd": 100.0, "seed_labels": 1000, "max_spend_usd": 10.0}


@pytest.mark.parametrize("world", [0, 1])
def test_a_pilot_runs_when_it_is_worth_its_price_and_moves_the_answer(
    two_worlds: Worlds, world: int
) -> None:
    truth = two_worlds[world]
    ran: list[Pilot] = []
    stored = [_row(truth, 1000, 0, "stored")]  # one finished trial of the task: its level
    result = plan(_runner(truth, ran), _settings(two_worlds, **NEAR), stored)
    assert ran, format_plan(result)
    assert all(p.n_labels * 1.5 >= result.prior_answer.n_labelled for p in ran)
    own = plan(_runner(truth, []), _settings([truth], **NEAR, pilots=False)).answer
    before, after = result.prior_answer.compute_fraction, result.answer.compute_fraction
    assert abs(after - own.compute_fraction) < abs(before - own.compute_fraction)
    assert all(s.gain_points > 0 and s.worth_usd >= s.price_usd for s in result.steps)
    text = format_plan(result)
    assert "pilot 1: L=" in text and "expected to cut the regret by" in text
    assert "predicted score" in text and "90 % predictive" in text


def test_no_pilot_runs_when_none_is_worth_its_price_or_none_stands_where_it_decides(
    two_worlds: Worlds,
) -> None:
    labels, _ = two_worlds
    ran: list[Pilot] = []
    stored = [_row(labels, 1000, 0, "stored")]
    # A cap of a cent buys no teacher and no label: nothing runs, nothing is spent.
    tight = {**NEAR, "max_spend_usd": 0.01}
    result = plan(_runner(labels, ran), _settings(two_worlds, **tight), stored)
    why = result.stopped_because
    assert "worth its price" in why or "buys no new pilot" in why
    assert result.spent_usd <= 0.01
    # With 100 seed labels at $300 the answer buys ~1,800 labels: the cap affords no pilot
    # near them, and a pilot far below them would measure another landscape. None runs.
    ran.clear()
    far = plan(_runner(labels, ran), _settings(two_worlds), stored)
    assert ran == [] and "buys no new pilot" in far.stopped_because


def test_the_decision_pays_for_compute_and_for_labels_the_answer_does_not_buy() -> None:
    s = _settings(prior.shipped())
    rows = [_row(prior.shipped()[1], 100, 0), _row(prior.shipped()[1], 2000, 0)]
    # The answer buys 1,500 labels: 500 more were bought by a pilot only to decide.
    assert label_charge_usd(s, rows, 1500) == pytest.approx(500 * 0.129)
    # An answer buying them all makes them part of the answer: nothing charged.
    assert label_charge_usd(s, rows, 2500) == 0.0
    # The seed labels are owned: a pilot on them costs no label.
    assert label_charge_usd(s, rows[:1], 0) == 0.0


def test_the_plan_charges_the_meter_that_prices_b_and_reports_the_ledger(
    two_worlds: Worlds,
) -> None:
    labels, _ = two_worlds
    stored = [_row(labels, 1000, 0, "stored")]
    result = plan(_runner(labels, []), _settings(two_worlds, **NEAR), stored)
    rows = [s.row for s in result.steps if s.row is not None]
    assert rows, format_plan(result)
    # B's meter charges each trial its teacher; the plan pays a teacher once.
    expected, trained = 0.0, set()
    for r in rows:
        refund = FEVER.teacher_usd(r.n_labels_used) if r.n_labels_used in trained else 0.0
        expected += r.compute_spent_usd - (refund if r.n_unlabelled else 0.0)
        trained |= {r.n_labels_used} if r.n_unlabelled else set()
    assert result.compute_usd == pytest.approx(expected)
    assert result.ledger_usd == pytest.approx(0.01 * len(rows))
    assert result.spent_usd == pytest.approx(result.compute_usd + result.label_usd)


@pytest.mark.parametrize("cap_usd", [2.0, 6.0, 15.0])
def test_the_cap_holds_at_worst_whatever_the_answer_becomes(
    two_worlds: Worlds, cap_usd: float
) -> None:
    labels, _ = two_worlds
    # A stored trial with many labels does not make a pilot's labels free: they were bought
    # before the plan, and the plan pays for its own.
    stored = [_row(labels, 1000, 0, "stored"), _row(labels, 3000, 0, "stored-large")]
    s = _settings(two_worlds, **{**NEAR, "max_spend_usd": cap_usd})
    result = plan(_runner(labels, []), s, stored)
    mine = [step.row for step in result.steps if step.row is not None]
    assert result.compute_usd + label_charge_usd(s, mine, 0) <= cap_usd + 1e-9
    assert result.spent_usd <= cap_usd + 1e-9


def test_bad_pilot_counts_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"`max_pilots >= 0` must hold, but got max_pilots=-3"):
        _settings(prior.shipped(), max_pilots=-3)


def test_a_landscape_never_reaches_its_own_prior(tmp_path: Path) -> None:
    # The same grid under another name is still itself: left out by content.
    renamed = tmp_path / "unnamed_task.csv"
    shutil.copy(prior.LANDSCAPES / "wlp.csv", renamed)
    table = ReplayTable.from_csv(renamed)
    names = [k.name for k in prior.shipped(exclude=table)]
    assert "wlp" not in names and len(names) == len(prior.shipped()) - 1
    # The benchmark's plan for a landscape is built the same way.
    sys.path.insert(0, str(ROOT))
    from bench.decision_landscapes import load_grid, settings

    grid = dataclasses.replace(load_grid(prior.LANDSCAPES / "wlp.csv"), table=table)
    args = type("A", (), {"max_spend_share": 0.1})()
    s = settings(grid, grid.setting(300, 100), args, pilots=False)  # type: ignore[arg-type]
    assert all(k.table.scores != table.scores for k in s.known)


@pytest.mark.parametrize(
    ("field", "value"),
    [("budget_usd", -1.0), ("max_spend_usd", 0.0), ("usd_per_label", math.nan)],
)
def test_bad_settings_name_the_value(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(_settings(prior.shipped()), **{field: value})


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


def test_sweep_plan_prices_b_in_advance_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    args = ["plan", "--task", "fever", "--budget", "300", "--root", str(tmp_path)]
    assert main([*args, "--meter", "measured"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--meter measured" in err and "--meter paper" in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_sweep_plan_answers_from_the_prior_for_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    file = tmp_path / "plan.toml"
    file.write_text(
        'task = "fever"\nbudget = 300\nseed_labels = 100\nobjective = "synthetic"\n'
        "max_spend = 30\n[prices]\nusd_per_device_hour = 3.0\n"
    )
    runs = tmp_path / "runs"
    assert main(["plan", "--config", str(file), "--pilots", "0", "--root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "plan for fever at B=$300 with 100 seed labels" in out
    assert "prior (landscapes bbc_news, fever, nq, wlp; no pilot): spend" in out
    assert "spent deciding: $0.00 (0.0 % of the budget" in out
    assert not runs.exists()  # a plan that runs nothing writes nothing
    # The plan names its own sweeps: a --name is refused, a file's `name` (for `run`) ignored.
    assert main(["plan", "--config", str(file), "--name", "mine"]) == 2
    assert "sweep plan takes no --name" in capsys.readouterr().err
    file.write_text(file.read_text().replace("max_spend", 'name = "x"\ntrials = 9\nmax_spend'))
    assert main(["plan", "--config", str(file), "--pilots", "0", "--root", str(runs)]) == 0
    # A measured grid of the user's own joins the prior.
    extra = tmp_path / "mine.csv"
    shutil.copy(prior.LANDSCAPES / "nq.csv", extra)
    code = main(["plan", "--config", str(file), "--pilots", "0", "--landscape", str(extra)])
    assert code == 0 and "landscapes bbc_news, fever, nq, wlp, mine;" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")  # in process: the suite's Ray, not one per plan
def test_sweep_plan_runs_pilots_that_pay_as_sweeps_and_says_what_deciding_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweep.cli.main import main

    monkeypatch.delenv("DOA_DATA_DIR", raising=False)  # no split bounds the stand-in's buys

    common = ["--task", "fever", "--objective", "synthetic", "--root", str(tmp_path)]
    # One finished trial of the task fixes its level; pilots can then show their worth.
    assert main(["grid", *common, "--labels", "1000", "--unlabelled", "0", "--meter", "paper"]) == 0
    capsys.readouterr()
    # Pilots near the answer's 1,000-odd labels cost some $18 (labels it may not buy
    # included): a cap of 20 % of B lets them run.
    args = ["plan", *common, "--budget", "100", "--seed-labels", "1000", "--max-spend", "20"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "with the 1 finished trials of the task in the store" in out
    assert "pilot 1: L=" in out and "expected to cut the regret by" in out
    spent = float(out.split("spent deciding: $")[1].split(" ")[0])
    assert 0 <= spent <= 20 and "sweep ledger $" in out
    # The pilots are sweeps in the store: a second plan starts from them.
    assert main([*args, "--pilots", "0"]) == 0
    again = capsys.readouterr().out
    n_pilots = out.count("\n  pilot ")
    assert f"with the {1 + n_pilots} finished trials" in again


def test_trials_that_learned_nothing_are_no_evidence_and_the_plan_says_so(
    two_worlds: Worlds,
) -> None:
    labels, _ = two_worlds
    constant = dataclasses.replace(_row(labels, 100, 0, "stored"), degenerate="student")
    result = plan(_runner(labels, []), _settings(two_worlds, pilots=False), [constant])
    # The constant predictor's score fixes no level: the answer is the prior's, unscored.
    assert result.answer == result.prior_answer and not result.answer.scored
    text = format_plan(result)
    assert "answer: nothing learned at this budget with this recipe" in text
    assert "sweep doctor --task fever --learn" in text
