"""Sweeps started at the same moment on a new, empty root: both stores are created once, every
trial of each sweep is recorded once, and a sweep that cannot start leaves nothing behind."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest

from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import optuna_storage
from sweep.tracking.schema import TAG_TRIAL_NUMBER
from tests.conftest import SWEEP_CLI
from tests.sweep_tests.conftest import synthetic_config

N_AT_ONCE = 6


def _open_both_stores(root: str, name: str, barrier: Any, results: Any) -> None:
    """What a sweep's driver writes first: its MLflow parent run, its Optuna study."""
    barrier.wait()  # all at the same moment, on stores that do not exist yet
    try:
        Tracker(f"sqlite:///{root}/mlflow.db").start_sweep_run("fever", name, {})
        storage = optuna_storage(f"sqlite:///{root}/optuna.db")
        optuna.create_study(storage=storage, study_name=name)
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}"[:300])


@pytest.mark.parametrize("attempt", range(3))
def test_new_stores_opened_at_once(tmp_path: Path, attempt: int) -> None:
    # The stores' modules imported once, here, not in each forked process.
    import alembic.migration  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(N_AT_ONCE), context.Queue()
    workers = [
        context.Process(target=_open_both_stores, args=(str(tmp_path), f"s{i}", barrier, results))
        for i in range(N_AT_ONCE)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert outcomes == ["ok"] * N_AT_ONCE, outcomes
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {f"s{i}" for i in range(N_AT_ONCE)}
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert all(tracker.find_sweep_run("fever", f"s{i}") for i in range(N_AT_ONCE))


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_sweeps_started_at_once_on_an_empty_root(tmp_path: Path) -> None:
    """Two `sweep run`s at once on a new root, joining the tests' Ray (a cluster of one);
    the stores' race itself is repeated above, where it costs seconds, not a minute."""
    import ray

    address = ray.get_runtime_context().gcs_address
    names, n_trials = ["a", "b"], 2
    at = ["--root", str(tmp_path), "--address", address]
    drivers = [
        subprocess.Popen(
            [*SWEEP_CLI, "--trials", str(n_trials), "--name", name, *at],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RAY_ADDRESS": ""},
        )
        for name in names
    ]
    errors = [driver.communicate(timeout=240)[1] for driver in drivers]
    assert [d.returncode for d in drivers] == [0] * len(names), errors
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        complete = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
        assert len(complete) == n_trials and len(study.trials) == n_trials
        runs = tracker.trial_runs(task="fever", sweep=name, status=None)
        assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in runs) == complete  # once each
        assert {r.info.status for r in runs} == {"FINISHED"}
        parent = tracker.find_sweep_run("fever", name)
        assert parent and tracker.client.get_run(parent).info.status == "FINISHED"


@pytest.mark.usefixtures("ray_session")
def test_a_sweep_that_cannot_start_leaves_nothing(tmp_path: Path) -> None:
    """A cluster without the GPU a trial asks for is found once Ray is up, after the stores
    were opened: the parent run and the study are removed, not left RUNNING and WAITING,
    and the same sweep then starts as if it never had been tried."""
    from sweep.engine.tuner import run_sweep

    cfg = synthetic_config(tmp_path, n_trials=2, teacher_gpus=1.0)
    with pytest.raises(ValueError, match="which no node of the cluster has"):
        run_sweep(cfg)
    tracker = Tracker(cfg.tracking)
    assert tracker.find_sweep_run("fever", "syn") is None
    assert not tracker.client.search_runs([tracker.experiment_id("fever")])  # none RUNNING
    assert "syn" not in {s.study_name for s in optuna.get_all_study_summaries(cfg.optuna_storage)}
    summary = run_sweep(synthetic_config(tmp_path, n_trials=2))
    assert summary.n_finished == 2
