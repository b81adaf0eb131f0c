"""Real sweeps through real Ray Tune, a persistent Optuna study and an MLflow SQLite store."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
import pytest

from objectives.standins import synthetic_trial
from objectives.trial_config import TrialConfig, TrialResult
from sweep.engine.tuner import first_points, run_sweep
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.results import best_allocations, finished_trials
from sweep.tracking.schema import TAG_FAILURE, TAG_TRIAL_NUMBER
from tests.sweep_tests.conftest import synthetic_config

pytestmark = pytest.mark.usefixtures("ray_session")
cloudpickle.register_pickle_by_value(__import__(__name__))


def _study(cfg: Any) -> optuna.Study:
    return optuna.load_study(study_name=cfg.name, storage=cfg.optuna_storage)


def _states(cfg: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in _study(cfg).trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def test_a_sweep_records_every_trial_in_optuna_and_mlflow(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path, seeds=2)
    out = io.StringIO()
    summary = run_sweep(cfg, out=out)
    assert summary.n_finished == 5 and summary.n_failed == 0
    assert _states(cfg) == {"COMPLETE": 5}
    tracker = Tracker(cfg.tracking)
    runs = tracker.trial_runs(task="fever", sweep="syn")
    assert len(runs) == 5
    numbers = sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in runs)
    assert numbers == [0, 1, 2, 3, 4]
    study = _study(cfg)
    for run in runs:
        name = run.data.tags["mlflow.runName"]
        assert re.fullmatch(r"fever/B=300/f=\d\.\d\d/seeds=2", name), name
        assert run.data.tags["mlflow.parentRunId"] == summary.parent_run_id
        trial = study.trials[int(run.data.tags[TAG_TRIAL_NUMBER])]
        # One name end to end: Optuna's params are MLflow's params.
        for key, value in trial.params.items():
            logged = run.data.params[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert float(logged) == pytest.approx(value), key
            else:
                assert logged == str(value), key
        assert trial.value == pytest.approx(run.data.metrics["score"])
        for ledger in ("practitioner_usd", "sweep_spent_usd", "annotation_usd", "compute_usd"):
            assert ledger in run.data.metrics
        assert run.data.metrics["practitioner_usd"] <= 300 + 1e-9
        assert run.data.tags["strategy"] in ("annotate", "mixed", "distill")
        assert run.data.metrics["n_seeds"] == 2
    parent = tracker.client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["budget_usd"] == "300.0"
    assert "5/5 done" in out.getvalue()


def test_resume_continues_the_study_without_repeats(tmp_path: Path) -> None:
    first = synthetic_config(tmp_path, n_trials=3)
    run_sweep(first)
    before = [t.params for t in _study(first).trials]
    more = synthetic_config(tmp_path, n_trials=6)
    summary = run_sweep(more, resume=True)
    assert summary.n_finished == 6 and _states(more) == {"COMPLETE": 6}
    after = [t.params for t in _study(more).trials]
    assert after[:3] == before
    # Startup points are not replayed: no distillation point of the first run comes again.
    assert all(p not in before for p in after[3:] if p["compute_fraction"] > 0)
    runs = Tracker(more.tracking).trial_runs(task="fever", sweep="syn")
    assert len(runs) == 6
    assert len({r.data.tags[TAG_TRIAL_NUMBER] for r in runs}) == 6


def test_resume_and_name_mistakes_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sweep named 'syn'"):
        run_sweep(synthetic_config(tmp_path), resume=True)
    assert not (tmp_path / "mlflow.db").exists()
    run_sweep(synthetic_config(tmp_path, n_trials=1))
    with pytest.raises(ValueError, match="already exists.*--resume"):
        run_sweep(synthetic_config(tmp_path, n_trials=1))


def flaky(cfg: TrialConfig, report: Any = None) -> TrialResult:
    """Fails on every distillation share above one half, as a crashing trial would."""
    if cfg.compute_fraction > 0.5:
        raise RuntimeError(f"boom at f={cfg.compute_fraction:.2f}")
    return synthetic_trial(cfg, report)


def test_crashed_trials_are_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    cfg = synthetic_config(
        tmp_path, n_trials=4, sampler="random", space="fraction_only", sampler_seed=3
    )
    console = io.StringIO()
    summary = run_sweep(cfg, out=console, objective=flaky)
    states = _states(cfg)
    assert summary.n_finished == 4 and states["COMPLETE"] == 4
    assert states.get("FAIL", 0) == summary.n_failed >= 1
    # The progress lines count the sweep's failures over its rounds: it never goes back.
    counts = [int(line.split(" failed]")[0].rsplit(" ", 1)[1]) for line in console.getvalue()
              .splitlines() if " failed]" in line]  # fmt: skip
    assert counts == sorted(counts) and counts[-1] == summary.n_failed
    tracker = Tracker(cfg.tracking)
    failed = tracker.trial_runs(task="fever", sweep="syn", status="FAILED")
    assert len(failed) == summary.n_failed
    assert all("RuntimeError: boom" in r.data.tags[TAG_FAILURE] for r in failed)
    # What a failure spent is kept (a stand-in spends nothing real; a real trial its time).
    assert all(r.data.metrics["sweep_spent_usd"] == 0.0 for r in failed)
    assert not tracker.trial_runs(task="fever", sweep="syn", status="RUNNING")
    rows = best_allocations(tracker, "fever")
    assert rows[0].compute_fraction <= 0.5 and rows[0].n_trials == 4  # failures ignored


def failing_once(cfg: TrialConfig, report: Any = None, marker: Path = Path()) -> TrialResult:
    """The grid point L=200, U=1000 fails the first time it runs, as a lost worker would."""
    if (cfg.n_labels, cfg.max_unlabelled) == (200, 1000) and not marker.exists():
        marker.touch()
        raise RuntimeError("lost worker")
    return synthetic_trial(cfg, report)


def test_a_failed_grid_point_is_measured_again_not_replaced_by_a_repeat(tmp_path: Path) -> None:
    from functools import partial

    cfg = synthetic_config(
        tmp_path, name="g", budget_usd=0.0, n_seed_labels=0, n_trials=4, concurrency=1,
        grid_labels=[100, 200], grid_unlabelled=[0, 1000], compute_allowance_usd=1000.0,
    )  # fmt: skip
    summary = run_sweep(cfg, objective=partial(failing_once, marker=tmp_path / "failed"))
    assert summary.n_failed == 1 and summary.n_finished == 4
    points = sorted(
        (r.n_labels_used, r.n_unlabelled) for r in finished_trials(Tracker(cfg.tracking))
    )
    assert points == [(100, 0), (100, 1000), (200, 0), (200, 1000)]  # each once


def test_grid_sampler_walks_the_paper_fractions(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path, n_trials=11, sampler="grid", concurrency=2)
    run_sweep(cfg)
    fractions = sorted(r.compute_fraction for r in finished_trials(Tracker(cfg.tracking)))
    assert fractions == pytest.approx([i / 10 for i in range(11)])


def test_replay_objective(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    lines = ["labels,unlabelled,compute_usd,score"]
    for labels in (100, 1000, 5000):
        for unlabelled in (0, 10000, 100000):
            cost = 3 + 4.29 * labels / 1000 + 0.78 * unlabelled / 1000 if unlabelled else 0
            score = 0.6 + 0.05 * (labels > 100) + 0.05 * (labels > 1000) + 0.04 * (unlabelled > 0)
            lines.append(f"{labels},{unlabelled},{cost},{score}")
    table.write_text("\n".join(lines) + "\n")
    cfg = synthetic_config(tmp_path, objective="replay", replay_table=str(table), n_trials=4)
    summary = run_sweep(cfg)
    assert summary.n_finished == 4 and summary.best_score is not None
    assert 0.6 <= summary.best_score <= 0.74


def test_asha_and_a_journal_storage(tmp_path: Path) -> None:
    # A journal file is the Optuna storage for clusters whose shared disks lock SQLite badly.
    cfg = synthetic_config(
        tmp_path, n_trials=4, asha=True, storage=str(tmp_path / "optuna.journal"), concurrency=2
    )
    summary = run_sweep(cfg)
    assert summary.n_finished == 4
    study = optuna.load_study(
        study_name="syn",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
        ),
    )
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 4 and any(t.state.name == "COMPLETE" for t in done)
    assert all(t.intermediate_values for t in done)  # progress reached Optuna too
    # A trial ASHA stopped has only a partial score: pruned in Optuna, never the best.
    pruned = {t.number for t in done if t.state.name == "PRUNED"}
    finished = finished_trials(Tracker(cfg.tracking), "fever", "syn")
    assert not pruned & {r.trial_number for r in finished}
    assert not Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn", status="RUNNING")


def test_killed_and_oom_trials_fail_cleanly(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def killed_then_oom(cfg: TrialConfig, report: Any = None) -> TrialResult:
        """The first trial dies like a worker the OOM killer took (SIGKILL); the second
        runs out of memory; the rest succeed."""
        import os
        import signal

        number = len(list(attempts.iterdir()))
        (attempts / str(number)).touch()
        if number == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        if number == 1:
            raise MemoryError("CUDA out of memory (simulated)")
        return synthetic_trial(cfg, report)

    cfg = synthetic_config(tmp_path, n_trials=3)
    summary = run_sweep(cfg, objective=killed_then_oom)
    states = _states(cfg)
    assert summary.n_finished == 3 and states == {"COMPLETE": 3, "FAIL": 2}
    assert summary.n_failed == 2
    tracker = Tracker(cfg.tracking)
    failed = tracker.trial_runs(task="fever", sweep="syn", status="FAILED")
    reasons = sorted(r.data.tags[TAG_FAILURE] for r in failed)
    assert len(reasons) == 2
    assert reasons[0].startswith("MemoryError: CUDA out of memory")
    assert reasons[1].startswith("worker died: ")  # it could not say why itself; Ray could
    assert not tracker.trial_runs(task="fever", sweep="syn", status="RUNNING")
    assert len(finished_trials(tracker, "fever")) == 3
    # A resumed sweep's summary counts the failures the study holds, not only its own.
    more = run_sweep(dataclasses.replace(cfg, n_trials=4), resume=True, objective=killed_then_oom)
    assert (more.n_finished, more.n_failed) == (4, 2)


def test_eight_concurrent_trials_share_one_sqlite_store(tmp_path: Path) -> None:
    cfg = synthetic_config(
        tmp_path,
        n_trials=16,
        concurrency=8,
        cpus_per_trial=0.25,
        sampler="random",
        standin_work_seconds=0.5,
    )
    summary = run_sweep(cfg)
    assert summary.n_finished == 16 and _states(cfg) == {"COMPLETE": 16}
    runs = Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn")
    assert len(runs) == 16
    expected = {
        "score",
        "practitioner_usd",
        "sweep_spent_usd",
        "annotation_usd",
        "compute_usd",
        "n_new_labels",
        "device_hours",
        "seed_score",
    }
    for run in runs:
        assert expected <= set(run.data.metrics), run.info.run_name


def test_first_points_take_the_configured_temperature_and_a_fixed_one_is_pinned(
    tmp_path: Path,
) -> None:
    # The previous search (`--sampler tpe`) queues f = 0, 1, 0.5; the posterior's queues none.
    assert first_points(synthetic_config(tmp_path)) == []
    points = first_points(synthetic_config(tmp_path, sampler="tpe"))
    assert [p["compute_fraction"] for p in points] == [0.0, 1.0, 0.5]
    assert "temperature" not in points[0]  # annotate only has none to set
    assert [p["temperature"] for p in points[1:]] == [TrialConfig.temperature] * 2  # paper's

    cfg = synthetic_config(tmp_path, n_trials=5, trial={"temperature": 0.7}, sampler="tpe")
    assert [p.get("temperature") for p in first_points(cfg)] == [None, 0.7, 0.7]
    run_sweep(cfg, out=io.StringIO())
    distilled = [t for t in _study(cfg).trials if t.params["compute_fraction"] > 0]
    assert len(distilled) == 4  # two first points, two sampled
    assert {t.params["temperature"] for t in distilled} == {0.7}
    runs = Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn")
    logged = [r.data.params.get("temperature") for r in runs]
    assert sorted(logged, key=str) == ["0.7"] * 4 + [None]  # annotate only logs none
