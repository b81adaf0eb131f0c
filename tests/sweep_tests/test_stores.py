"""Stores a command cannot use as they are: damaged (empty, garbage, truncated) ones are
named in one line and never written into; a read-only folder of stores is still read."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweep.cli.main import main
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import study_state
from sweep.tracking.schema import TAG_BUDGET, TAG_SEED_LABELS, TAG_SWEEP
from tests.sweep_tests.conftest import synthetic_config

RUN = ["run", "--task", "fever", "--budget", "30", "--seed-labels", "10", "--trials", "2"]
RUN += ["--objective", "synthetic"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both stores of a sweep "syn" with one finished trial, made without Ray."""
    root = tmp_path_factory.mktemp("stores")
    cfg = synthetic_config(root)
    tracker = Tracker(cfg.tracking)
    parent = tracker.start_sweep_run("fever", "syn", {})
    tags = {TAG_SWEEP: "syn", TAG_BUDGET: "30", TAG_SEED_LABELS: "10"}
    run = tracker.start_trial_run("fever", tracker.experiment_id("fever"), parent, "t", {}, tags)
    tracker.log(run, metrics={"score": 0.5, "compute_fraction": 0.0})
    tracker.end(run)
    study, _ = study_state(cfg, new=True)
    study.set_user_attr("sweep_config", cfg.to_dict())
    return root


DAMAGE = {
    "empty": lambda data: b"",
    "garbage": lambda data: bytes(range(256)) * 20,
    "truncated": lambda data: data[: len(data) // 3],
}
COMMANDS = {
    "best": ["best"],
    "run": RUN,
    "resume": ["run", "--name", "syn", "--resume", "--trials", "3"],
}


# `sweep best` reads MLflow only; `run` and `run --resume` open both stores.
CASES = [
    (store, damage, command)
    for store in ("mlflow.db", "optuna.db")
    for damage in sorted(DAMAGE)
    for command in sorted(COMMANDS)
    if not (store == "optuna.db" and command == "best")
]


@pytest.mark.parametrize(("store", "damage", "command"), CASES)
def test_a_damaged_store_is_named_in_one_line_and_left_as_it_is(
    stores: Path,
    tmp_path: Path,
    store: str,
    damage: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "runs"
    shutil.copytree(stores, root)
    damaged = DAMAGE[damage]((root / store).read_bytes())
    (root / store).write_bytes(damaged)
    assert main([*COMMANDS[command], "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    kind = "MLflow" if store == "mlflow.db" else "Optuna"
    assert err.startswith(f"sweep: error: The {kind} store {root / store} is "), err
    assert len(err.splitlines()) == 1, err
    assert (root / store).read_bytes() == damaged  # nothing written into it
    assert "sweep doctor" in err


@pytest.fixture
def read_only_copy(stores: Path, tmp_path: Path) -> Iterator[Path]:
    """The stores in a folder this process cannot write: a read-only bind mount for root
    (whom permissions do not stop), the folder's mode for anyone else."""
    folder = tmp_path / "stores"
    shutil.copytree(stores, folder)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    view = tmp_path / "read-only"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder here: {mounted.stderr!r}")
    try:
        remount = ["mount", "-o", "remount,ro,bind", str(view)]
        if subprocess.run(remount, capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_a_read_only_folder_of_stores_is_read_and_never_written(
    read_only_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in read_only_copy.iterdir())
    assert main(["best", "--root", str(read_only_copy)]) == 0
    assert "fever" in capsys.readouterr().out
    # A command that would write says why it cannot, in one line: its plots' folder, or
    # the store itself (plots written elsewhere, then logged to their runs).
    assert main(["report", "--task", "fever", "--root", str(read_only_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(read_only_copy / "report") in err, err
    out = ["--out", str(read_only_copy.parent / "plots")]
    assert main(["report", "--task", "fever", "--root", str(read_only_copy), *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err, err
    assert sorted(p.name for p in read_only_copy.iterdir()) == before
