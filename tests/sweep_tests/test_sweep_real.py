"""A tiny real sweep: real training through Ray Tune, Optuna and MLflow (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweep.config import SweepConfig
from sweep.engine.tuner import run_sweep
from sweep.tracking.mlflow_store import Tracker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

TINY = {
    "teacher": "bert-offline-student",
    "student": "bert-offline-student",
    "teacher_epochs": 2,
    "student_epochs": 2,
    "distill_epochs": 1,
    "teacher_lr": 3e-3,
    "student_lr": 3e-3,
    "batch_size": 16,
    "hardware": "cpu",
    "usd_per_device_hour": 20000.0,
}


def test_tiny_real_sweep(
    tmp_path: Path, tiny_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = SweepConfig(
        name="tiny-real",
        task="tiny",
        budget_usd=12.0,
        n_seed_labels=20,
        n_trials=3,
        trial={**TINY, "task_file": str(tiny_task)},
        sampler="grid",
        root=str(tmp_path),
    )
    summary = run_sweep(cfg)
    assert summary.n_finished == 3 and summary.n_failed == 0
    runs = Tracker(cfg.tracking).trial_runs(task="tiny", sweep="tiny-real")
    assert len(runs) == 3
    for run in runs:
        m = run.data.metrics
        assert 0.0 <= m["score"] <= 1.0
        assert m["practitioner_usd"] <= 12.0 + 1e-9
        assert m["sweep_spent_usd"] > 0  # real seconds were really spent
        assert run.data.tags["teacher_status"] in ("finished", "not_needed", "unaffordable")
        assert run.data.tags["ray.node_ip"]
        # Against the trivial baseline on the same dev rows, logged with the result.
        assert m["margin_low"] <= m["margin"] <= m["margin_high"]
        assert m["margin"] == pytest.approx(m["score"] - m["trivial_score"])
        assert run.data.tags["trivial_predictor"].startswith("majority class")
    assert (tmp_path / "cache").is_dir()
    # A trial whose student learned nothing is named on the console and tagged.
    out = capsys.readouterr().out
    marked = [r for r in runs if "student" in r.data.tags.get("degenerate", "")]
    assert out.count(": student ") == len(marked)
