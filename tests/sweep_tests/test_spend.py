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


def test_the_first_trial_always_starts_and_later_ones_only_within_the_cap() -> None:
    ledger = SpendLedger(cap_usd=10.0)
    assert ledger.may_start()  # nothing to go by yet
    ledger.record(0.0)  # annotation only on a stand-in: no compute
    assert ledger.may_start()
    ledger.record(4.0)
    assert ledger.may_start()  # 4 + 4 <= 10
    ledger.running = 1
    assert not ledger.may_start()  # 4 + 2 x 4 > 10: the running trial may cost 4 too
    ledger.running = 0
    ledger.record(3.0)
    assert not ledger.may_start()  # 7 + 4 > 10
    assert "$7.00 spent of $10.00" in ledger.describe()
    assert SpendLedger(cap_usd=None, spent_usd=1e9, largest_usd=1.0).may_start()


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
    ledger = SpendLedger(cap_usd=1.0, usd_per_second=0.01)
    cap = SpendCap(Points(metric="score", mode="max"), ledger)
    assert cap.suggest("a") == {"compute_fraction": 0.5}
    cap.on_trial_complete("a", None, error=True)  # ran 30 s before it failed: $0.30
    assert ledger.spent_usd == pytest.approx(0.30) and ledger.running == 0
    assert cap.suggest("b") is not None
    cap.on_trial_complete("b", {"sweep_spent_usd": 0.25})  # a finished trial: its ledger
    assert ledger.spent_usd == pytest.approx(0.55)
    assert ledger.may_start()  # 0.55 + the costliest (the failure's 0.30) <= 1.0
    assert cap.suggest("c") is not None
    cap.on_trial_complete("c", {"sweep_spent_usd": 0.30})
    assert not ledger.may_start()  # 0.85 + 0.30 > 1.0
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
    # The stand-in's first points: f = 0 ($0 of compute), f = 1 ($85.29), f = 0.5 ($90.27).
    # After f = 1, a third trial could cost another $85.29: 170.58 > 150, so none starts.
    cfg = synthetic_config(tmp_path, n_trials=5, max_spend_usd=150.0)
    summary = run_sweep(cfg)
    rows = finished_trials(Tracker(cfg.tracking), cfg.task, cfg.name)
    assert summary.n_finished == len(rows) == 2
    assert sorted(r.compute_fraction for r in rows) == [0.0, 1.0]
    assert "stopped at the spending cap: $85.29 spent of $150.00" in summary.stopped
    parent = Tracker(cfg.tracking).find_sweep_run(cfg.task, cfg.name)
    run = Tracker(cfg.tracking).client.get_run(parent)
    assert run.data.metrics["sweep_spent_usd"] == pytest.approx(85.29)
    assert "spending cap" in run.data.tags["stopped"]
    # Resumed with a larger cap, it goes on from what it had spent.
    more = synthetic_config(tmp_path, n_trials=5, max_spend_usd=400.0)
    summary = run_sweep(more, resume=True)
    assert summary.n_finished > 2


def test_a_failed_second_is_priced_like_the_sweep(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path)
    assert failed_usd_per_second(cfg) == 0.0  # stand-ins spend nothing real
    trial = {**cfg.trial, "usd_per_device_hour": 36.0}
    real = dataclasses.replace(cfg, objective="real", trial=trial)
    assert failed_usd_per_second(real) == pytest.approx(0.01)
