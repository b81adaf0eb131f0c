"""Noise made visible (every score's interval, `sweep best` against annotate only) and a
study that never mixes two metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cloudpickle
import optuna
import pytest

from objectives.standins import synthetic_trial
from objectives.trial_config import TrialConfig, TrialResult
from sweep.engine.tuner import run_sweep
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import check_study_metric, optuna_storage
from sweep.tracking.results import best_allocations, format_best
from sweep.tracking.schema import score_interval
from tests.logged_runs import RunStore, logged_run
from tests.sweep_tests.conftest import synthetic_config

cloudpickle.register_pickle_by_value(__import__(__name__))


def _result(score: float, low: float | None, high: float | None, seed: int = 0) -> TrialResult:
    cfg = TrialConfig("fever", 30.0, 100, 0.5, seed=seed, usd_per_device_hour=1.875)
    return dataclasses.replace(synthetic_trial(cfg), score=score, score_low=low, score_high=high)


def test_the_interval_over_seeds_holds_the_bootstrap_and_every_seed() -> None:
    # One seed: its own bootstrap interval.
    assert score_interval([_result(0.70, 0.65, 0.75)]) == (0.65, 0.75)
    # Seeds: the mean of their intervals, widened to hold every seed's score.
    three = [_result(0.70, 0.66, 0.74), _result(0.60, 0.56, 0.64), _result(0.80, 0.76, 0.84)]
    assert score_interval(three) == pytest.approx((0.60, 0.80))
    close = [_result(0.70, 0.60, 0.80), _result(0.72, 0.62, 0.82)]
    assert score_interval(close) == pytest.approx((0.61, 0.81))
    # No interval and one seed: none; several seeds without intervals: their range.
    assert score_interval([_result(0.7, None, None)]) == (None, None)
    assert score_interval([_result(0.7, None, None), _result(0.6, None, None)]) == (0.6, 0.7)


def _run(run_id: str, fraction: float, score: float, low: float, high: float) -> Any:
    """A finished trial run as MLflow returns it (what `sweep best` reads)."""
    metrics = {"score": score, "score_low": low, "score_high": high, "n_seeds": 1.0}
    tags = {"doa.sweep": "s", "doa.task": "fever", "doa.budget_usd": "30"}
    tags["strategy"] = "annotate" if fraction == 0 else "mixed"
    return logged_run(run_id, fraction, metrics, tags, 1)


@pytest.mark.parametrize(
    ("best", "verdict", "beyond"),
    [
        (_run("b", 0.4, 0.731, 0.725, 0.75), "+0.031 (beyond the interval)", True),
        (_run("b", 0.4, 0.704, 0.67, 0.73), "+0.004 (within noise)", False),
    ],
)
def test_sweep_best_says_whether_the_best_beats_annotate_only_beyond_noise(
    best: Any, verdict: str, beyond: bool
) -> None:
    annotate = _run("a", 0.0, 0.700, 0.68, 0.72)
    [row] = best_allocations(RunStore([annotate, best]))  # type: ignore[arg-type]
    assert row.compute_fraction == 0.4 and row.versus_annotate_only == verdict
    assert row.to_dict()["beyond_noise"] is beyond
    assert row.to_dict()["vs_annotate_only"] == pytest.approx(best.data.metrics["score"] - 0.7)
    assert verdict in format_best([row]) and "vs annotate-only" in format_best([row])


def test_sweep_best_without_an_annotate_only_trial_says_so() -> None:
    [row] = best_allocations(RunStore([_run("b", 0.4, 0.7, 0.6, 0.8)]))  # type: ignore[arg-type]
    assert row.versus_annotate_only == "no annotate-only trial"
    [alone] = best_allocations(RunStore([_run("a", 0.0, 0.7, 0.6, 0.8)]))  # type: ignore[arg-type]
    assert alone.versus_annotate_only == "annotate-only is best"


def test_a_study_refuses_a_second_metric(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path)
    optuna.create_study(study_name=cfg.name, storage=optuna_storage(cfg.optuna_storage))
    check_study_metric(cfg, "accuracy", RunStore([]))  # the first stores its metric
    check_study_metric(cfg, "accuracy", RunStore([]))
    with pytest.raises(ValueError, match="scores with metric 'accuracy'.*scored with 'ibleu'"):
        check_study_metric(cfg, "ibleu", RunStore([]))
    # A study from before the metric was stored: its MLflow runs name it.
    old = synthetic_config(tmp_path, name="old")
    optuna.create_study(study_name=old.name, storage=optuna_storage(old.optuna_storage))
    tagged = SimpleNamespace(data=SimpleNamespace(tags={"metric": "macro_f1"}))
    with pytest.raises(ValueError, match="never mixes two metrics"):
        check_study_metric(old, "micro_f1", RunStore([tagged]))


def relabelled(cfg: TrialConfig, report: Any = None) -> TrialResult:
    """A synthetic trial scored under another metric's name (as a BERTScore fallback was)."""
    return dataclasses.replace(synthetic_trial(cfg, report), metric="ibleu")


@pytest.mark.usefixtures("ray_session")
def test_a_sweep_logs_the_interval_and_a_resumed_one_keeps_its_metric(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path, n_trials=2)
    run_sweep(cfg)
    runs = Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn")
    for run in runs:
        m = run.data.metrics
        assert m["score_low"] <= m["score"] <= m["score_high"]
        assert run.data.tags["metric"] == "synthetic"
    study = optuna.load_study(study_name="syn", storage=optuna_storage(cfg.optuna_storage))
    assert study.user_attrs["metric"] == "synthetic"
    [best] = best_allocations(Tracker(cfg.tracking))
    assert best.score_low is not None and best.versus_annotate_only
    # Resumed with trials scored under another metric: they fail, none is told to Optuna.
    more = dataclasses.replace(cfg, n_trials=3)
    summary = run_sweep(more, resume=True, objective=relabelled)
    assert summary.n_finished == 2 and summary.n_failed >= 1
    assert any("never mixes two metrics" in reason for reason in summary.failures)
