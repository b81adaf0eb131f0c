"""A sweep's spending cap (`--max-spend`): the rule, and a real sweep that stops at it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sweep.engine.ray_hooks import SpendCap
from sweep.engine.spend import SpendLedger
from sweep.engine.trainable import failed_usd_per_second
from sweep.engine.tuner import run_sweep
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.results import finished_trials
from sweep.tracking.schema import trial_spent_usd
from tests.sweep_tests.conftest import synthetic_config


def test_a_trial_is_priced_at_its_worst_before_it_starts() -> None:
    """Its allocation's whole compute (issue 41, item 17: a $0 first trial no longer lets
    an f = 1 trial at B = $30 start under a $20 cap)."""
    ledger = SpendLedger(cap_usd=20.0)
    assert ledger.may_start(0.0)  # annotation only: no compute
    ledger.start("a", 0.0)
    ledger.finish("a", 0.0)
    assert not ledger.may_start(30.0)  # f = 1 at B = $30 could spend $30
    assert ledger.may_start(15.0)  # f = 0.5 could spend $15
    ledger.start("b", 15.0)  # running: counted at its worst
    assert not ledger.may_start(6.0) and ledger.may_start(5.0)  # 15 + 6 > 20
    ledger.finish("b", 9.0)  # it spent $9
    assert ledger.running == 0 and ledger.may_start(11.0) and not ledger.may_start(11.01)
    ledger.refuse(12.0)
    assert ledger.stopped
    assert "$9.00 spent of $20.00; the next trial could cost $12.00 at its worst" in (
        ledger.describe()
    )
    assert SpendLedger(cap_usd=None, spent_usd=1e9, largest_usd=1.0).may_start(1e9)


def test_a_real_trial_costs_at_least_the_costliest_finished_one() -> None:
    """What the meter does not charge (the student's own training, evaluation) is real
    spend too: a real trial is priced at no less than the costliest that finished."""
    ledger = SpendLedger(cap_usd=1.0, real=True)
    ledger.start("a", 0.0)
    ledger.finish("a", 0.4)  # annotation only spent $0.40 of device time
    assert ledger.may_start(0.0)  # 0.4 + 0.4 <= 1
    ledger.start("b", 0.0)
    assert not ledger.may_start(0.0)  # 0.4 + 0.4 (running) + 0.4 > 1
    stand_in = SpendLedger(cap_usd=1.0, largest_usd=0.9)
    assert stand_in.may_start(0.5)  # a stand-in spends its allocation at most


def test_real_spending_counts_and_stand_ins_count_their_allocation() -> None:
    assert trial_spent_usd({"sweep_spent_usd": 0.5, "compute_spent_usd": 9.0}) == 0.5
    assert trial_spent_usd({"sweep_spent_usd": 0.0, "compute_spent_usd": 9.0}) == 9.0
    assert trial_spent_usd({}) == 0.0


def test_a_failed_trial_is_charged_the_time_it_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.tune.search import Searcher

    class Points(Searcher):
        def suggest(self, trial_id: str) -> dict[str, float]:
            return {"compute_fraction": 0.5}

        def on_trial_complete(
            self, trial_id: str, result: object = None, error: bool = False
        ) -> None:
            told.append(result)

    told: list[object] = []
    clock = iter([100.0, 130.0, 200.0, 300.0, 400.0, 410.0])
    monkeypatch.setattr("sweep.engine.ray_hooks.time.monotonic", lambda: next(clock))
    ledger = SpendLedger(cap_usd=1.0, usd_per_second=0.01, real=True)
    cap = SpendCap(Points(metric="score", mode="max"), ledger)
    assert cap.suggest("a") == {"compute_fraction": 0.5}
    cap.on_trial_complete("a", None, error=True)  # ran 30 s before it failed: $0.30
    assert ledger.spent_usd == pytest.approx(0.30) and ledger.running == 0
    assert cap.suggest("b") is not None
    cap.on_trial_complete("b", {"sweep_spent_usd": 0.25})  # a finished trial: its ledger
    assert ledger.spent_usd == pytest.approx(0.55)
    assert ledger.may_start(0.0)  # 0.55 + the costliest (the failure's 0.30) <= 1.0
    assert cap.suggest("c") is not None
    cap.on_trial_complete("c", {"sweep_spent_usd": 0.30})
    assert not ledger.may_start(0.0)  # 0.85 + 0.30 > 1.0
    # A trial ASHA stopped after 10 s: its time is charged, Optuna gets no (partial) score.
    ledger.cap_usd = None
    assert cap.suggest("d") is not None
    cap.on_trial_complete("d", {"score": 0.4, "stage": "distill"})
    assert ledger.spent_usd == pytest.approx(0.95) and told[-1] is None
    assert told[1] == {"sweep_spent_usd": 0.25}  # a finished trial's result goes on as is


def test_a_negative_cap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_spend_usd > 0"):
        synthetic_config(tmp_path, max_spend_usd=-1.0)


@pytest.mark.usefixtures("ray_session")
def test_a_sweep_starts_no_trial_that_could_pass_its_cap(tmp_path: Path) -> None:
    # The previous search's first points at B = $30: f = 0 ($0 of compute), then f = 1, which
    # could spend the whole $30: over a $20 cap, it never starts (it once spent $30 under it).
    cfg = synthetic_config(
        tmp_path, budget_usd=30.0, n_seed_labels=100, max_spend_usd=20.0, sampler="tpe"
    )
    summary = run_sweep(cfg)
    tracker = Tracker(cfg.tracking)
    rows = finished_trials(tracker, cfg.task, cfg.name)
    assert summary.n_finished == len(rows) == 1 and rows[0].compute_fraction == 0.0
    assert summary.n_failed == 0  # the refused trial never ran: no failure
    assert "$0.00 spent of $20.00; the next trial could cost $30.00 at its worst" in (
        summary.stopped
    )
    run = tracker.client.get_run(tracker.find_sweep_run(cfg.task, cfg.name) or "")
    assert run.data.metrics["sweep_spent_usd"] == 0.0
    assert "spending cap" in run.data.tags["stopped"]
    # Resumed with a larger cap, it goes on from what it had spent, and runs the refused
    # planned point (f = 1) first; what it spends never passes the cap.
    more = synthetic_config(
        tmp_path, budget_usd=30.0, n_seed_labels=100, n_trials=4, max_spend_usd=50.0
    )
    summary = run_sweep(more, resume=True)
    rows = finished_trials(tracker, cfg.task, cfg.name)
    assert summary.n_finished == len(rows) >= 3 and 1.0 in {r.compute_fraction for r in rows}
    assert sum(trial_spent_usd({"compute_spent_usd": r.compute_spent_usd}) for r in rows) <= 50


def test_a_failed_second_is_priced_like_the_sweep(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path)
    assert failed_usd_per_second(cfg) == 0.0  # stand-ins spend nothing real
    trial = {**cfg.trial, "usd_per_device_hour": 36.0}
    real = dataclasses.replace(cfg, objective="real", trial=trial)
    assert failed_usd_per_second(real) == pytest.approx(0.01)
