"""The default path as a newcomer takes it: relative stores, honest exit codes, defaults that
fit the machine, every option reaching its config field."""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from objectives.trial_config import TrialConfig
from sweep import config
from sweep.cli import fields, options
from sweep.cli import main as cli
from sweep.engine.progress import TrialProgress
from tests.conftest import SWEEP_RUN

REPO = Path(__file__).resolve().parents[2]


def _sweep_in(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`sweep ARGV` as a user types it, from `folder`, with this checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "sweep", *argv],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_a_sweep_with_the_default_root_from_another_folder(tmp_path: Path) -> None:
    """Ray runs each trial in its own working directory: a relative `runs` must still name
    the driver's stores (it used to give every trial a new, empty MLflow store)."""
    run = _sweep_in(tmp_path, *SWEEP_RUN, "--trials", "3")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 trials finished, 0 failed" in run.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "artifacts",
        "drivers",  # the lock of each sweep's one driver (docs/failures.md)
        "mlflow.db",
        "mlflow.db.lock",  # held while a process first opens the store (concurrent starts)
        "optuna.db",
        "optuna.db.lock",
        "ray",
    ]
    report = _sweep_in(tmp_path, "report", "--task", "fever")
    assert report.returncode == 0, report.stderr
    assert len(list((tmp_path / "runs" / "report").glob("fever_*.png"))) == 3
    # Artifacts live beside the store, never in an `mlruns/` of the working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert list((tmp_path / "runs" / "artifacts").rglob("fever_pareto.png"))


def _boom(cfg: Any, report: Any = None) -> Any:
    raise RuntimeError(f"disk on fire at f={cfg.compute_fraction}")


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_sweep_that_finished_nothing_fails_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.engine import progress, tuner

    monkeypatch.setattr(tuner, "objective_for", lambda cfg: _boom)
    # Eight trials wanted; the third failure of one kind stops the first round itself.
    argv = [*SWEEP_RUN, "--trials", "8", "--concurrency", "1", "--root", str(tmp_path)]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == cli.EXIT_NOTHING_FINISHED
    assert "no trial finished" in captured.err
    assert "RuntimeError: disk on fire at f=" in captured.err
    assert "FAILED: RuntimeError: disk on fire" in captured.out  # the progress line too
    # One exception type three times and nothing finished: systematic, so no more reruns.
    assert captured.out.count("FAILED: RuntimeError") == progress.FAIL_FAST_AFTER, captured.out


def test_without_cuda_the_cpu_recipe_is_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(options, "has_cuda", lambda: False)
    assert options.choose_preset(None) == "cpu-small"
    assert "no GPU here: training with the cpu-small recipe" in capsys.readouterr().out
    assert options.choose_preset("paper") == "paper"
    assert "warning: --preset paper on a CPU" in capsys.readouterr().out
    args = cli.build_parser().parse_args(
        ["run", "--task", "fever", "--budget", "30", "--seed-labels", "10", "--trials", "2"]
    )
    assert options.sweep_config(args).preset == "cpu-small"
    capsys.readouterr()
    monkeypatch.setattr(options, "has_cuda", lambda: True)
    assert options.sweep_config(args).preset == "paper"
    assert capsys.readouterr().out == ""


def test_relative_paths_are_made_absolute_in_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config.SweepConfig(
        name="s",
        task="fever",
        budget_usd=10,
        n_seed_labels=0,
        n_trials=1,
        storage="studies/optuna.db",
        tracking_uri="sqlite:///t/mlflow.db",
        trial={"data_dir": "data", "cache_dir": "c"},
    )
    assert cfg.root == str(tmp_path / "runs")
    assert cfg.storage == str(tmp_path / "studies" / "optuna.db")
    assert cfg.tracking == f"sqlite:///{tmp_path / 't' / 'mlflow.db'}"
    assert cfg.trial["data_dir"] == str(tmp_path / "data")
    assert cfg.cache_dir == str(tmp_path / "c")
    assert cfg.ray_storage == str(tmp_path / "runs" / "ray")
    assert config.SweepConfig(**{**cfg.to_dict(), "root": "elsewhere"}).report_dir == str(
        tmp_path / "elsewhere" / "report"
    )


# --- one source of truth for options ------------------------------------------------------

# Options of `run`/`trial` that set no config field of their own, and why.
COMMAND_ONLY = {
    "command",
    "func",
    "verbose",  # logging
    "json",  # output format
    "resume",  # a mode of the command
    "config",  # the file the fields come from
    "price",  # resolved into usd_per_label by the price book
}


def _dests(command: str) -> set[str]:
    return set(vars(cli.build_parser().parse_args([command])).keys())


@pytest.mark.parametrize("command", ["run", "trial", "grid"])
def test_every_option_sets_a_config_field(command: str) -> None:
    args = cli.build_parser().parse_args([command])
    reached = {*fields.trial_options(args), *fields.sweep_options(args)}
    resolved = {"task_file", *config.PRICE_FIELDS}  # price book / task file set these
    grid_only = {"labels", "unlabelled", "out"}
    leftover = _dests(command) - reached - resolved - COMMAND_ONLY - grid_only
    assert not leftover, f"options that reach no config field: {sorted(leftover)}"
    trial_fields = {f.name for f in dataclasses.fields(TrialConfig)}
    for name in reached:
        assert fields.field_of(name) in trial_fields | config.SWEEP_FIELDS, name


# A value for each sweep option that differs from its default.
SWEEP_VALUES: dict[str, list[str]] = {
    "standin_work_seconds": ["--standin-work-seconds", "0.7"],
    "sampler_seed": ["--sampler-seed", "7"],
    "cpus_per_trial": ["--cpus-per-trial", "0.5"],
    "teacher_gpus": ["--teacher-gpus", "2"],
    "student_gpus": ["--student-gpus", "0.25"],
    "teacher_node_resource": ["--teacher-node-resource", "big"],
    "student_node_resource": ["--student-node-resource", "small"],
    "cache": ["--no-cache"],
    "asha": ["--asha"],
    "retries": ["--retries", "2"],
    "max_spend_usd": ["--max-spend", "5"],
    "pending_timeout_s": ["--pending-timeout", "60"],
    "concurrency": ["--concurrency", "3"],
    "seeds": ["--seeds", "2"],
    "sampler": ["--sampler", "random"],
    "space": ["--space", "fraction_only"],
    "name": ["--name", "n1"],
    "address": ["--address", "127.0.0.1:1"],
    "root": ["--root", "/tmp/r"],
    "tracking_uri": ["--tracking-uri", "http://h:5000"],
    "storage": ["--storage", "/tmp/s.journal"],
    "warm_start": ["--warm-start", "fever"],
    "budget_range": ["--budget-range", "10,20"],
    "objective": ["--objective", "synthetic"],
    "preset": ["--preset", "cpu-small"],
    "replay_table": ["--objective", "replay", "--replay-table", "/tmp/t.csv"],
}


@pytest.mark.parametrize("field_name", sorted(SWEEP_VALUES))
def test_each_sweep_option_reaches_its_field(field_name: str) -> None:
    base = ["run", "--task", "fever", "--budget", "30", "--seed-labels", "10", "--trials", "2"]
    args = cli.build_parser().parse_args([*base, *SWEEP_VALUES[field_name]])
    cfg = options.sweep_config(args)
    default = next(f for f in dataclasses.fields(config.SweepConfig) if f.name == field_name)
    assert getattr(cfg, field_name) != default.default, field_name


def test_every_sweep_option_has_a_value_above() -> None:
    args = cli.build_parser().parse_args(["run"])
    assert {fields.field_of(n) for n in fields.sweep_options(args)} - {"n_trials"} == set(
        SWEEP_VALUES
    )


def test_a_resume_refuses_every_fixed_field() -> None:
    stored = config.SweepConfig(
        name="s", task="fever", budget_usd=10, n_seed_labels=5, n_trials=2
    ).to_dict()
    changed: dict[str, Any] = {
        "task": "nq",
        "budget_usd": 11.0,
        "n_seed_labels": 6,
        "seeds": 3,
        "objective": "synthetic",
        "preset": "cpu-small",
        "budget_range": [1.0, 2.0],
        "grid_labels": [1],
        "grid_unlabelled": [0],
        "compute_allowance_usd": 500.0,
    }
    assert set(config.FIXED_ON_RESUME) == {*changed, "trial"}
    for key, value in changed.items():
        with pytest.raises(ValueError, match=f"{key}="):
            options.resumed(stored, {key: value})
    with pytest.raises(ValueError, match="teacher_lr"):
        options.resumed({**stored, "trial": {"teacher_lr": 1e-4}}, {"trial": {"teacher_lr": 2e-4}})


def test_a_task_file_names_its_task(tiny_task: Path) -> None:
    args = cli.build_parser().parse_args(
        [
            *("run", "--task-file", str(tiny_task), "--budget", "5", "--seed-labels", "10"),
            *("--trials", "2", "--objective", "synthetic"),
        ]
    )
    assert options.sweep_config(args).task == "tiny"


def test_a_config_file_key_no_option_has_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('task = "fever"\nbudgett = 3\n')
    args = cli.build_parser().parse_args(["run", "--config", str(cfg)])
    with pytest.raises(ValueError, match="Unknown key 'budgett' in --config"):
        options.sweep_config(args)


# --- a running trial says where it is -----------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_a_line_at_least_every_ten_seconds() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = TrialProgress(out, clock)
    progress({"stage": "progress", "phase": "prepare", "step": 0, "steps": 0})
    progress({"stage": "progress", "phase": "teacher", "step": 0, "steps": 0})
    for step in range(1, 301):
        clock.now += 0.5  # a step every half second: 150 s of teacher
        progress({"stage": "progress", "phase": "teacher", "step": step, "steps": 300})
    progress({"stage": "distill", "epoch": 1, "score": 0.5})
    progress({"stage": "final", "score": 0.5})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("teacher started")
    assert 14 <= sum("teacher: step" in line for line in lines) <= 16
    assert lines[-1].endswith("distill epoch 1: dev 0.5000")


def test_progress_draws_a_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, clock = Terminal(), _Clock()
    progress = TrialProgress(out, clock)
    for step in range(1, 11):
        clock.now += 1
        progress({"stage": "progress", "phase": "distill", "step": step, "steps": 10})
    progress({"stage": "final"})
    assert "\r" in out.getvalue() and "[########################] 10/10 steps" in out.getvalue()
    assert out.getvalue().endswith("\n")


def test_the_trial_command_shows_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(argparse.Namespace, type)  # keeps the import honest for mypy
    seen: list[Any] = []

    def fake_run_trial(cfg: Any, report: Any = None) -> Any:
        seen.append(report)
        raise KeyboardInterrupt

    import objectives.distill_or_annotate as trial_module

    monkeypatch.setattr(trial_module, "run_trial", fake_run_trial)
    monkeypatch.setattr(options, "has_cuda", lambda: False)
    argv = ["trial", "--task", "fever", "--budget", "3", "--seed-labels", "10"]
    assert cli.main([*argv, "--compute-fraction", "0.5"]) == 130
    assert isinstance(seen[0], TrialProgress)
