"""The sweep's own failure paths (issue 41): a planned point that failed, errors read whole,
systematic failures, a full disk, counts that hold across rounds and drivers, one driver
per sweep, a double Ctrl-C, trials that wait too long for the cluster."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from objectives.trial_config import TrialConfig, TrialResult
from sweep.cli import options
from sweep.cli.main import _highest, main
from sweep.cli.parser import build_parser
from sweep.engine.progress import last_line, systematic
from sweep.engine.stopping import stopped_by_full_disk
from sweep.engine.tuner import SweepSummary, run_sweep
from sweep.tracking.mlflow_store import TAG_NOTE, Tracker
from sweep.tracking.optuna_store import (
    PLANNED_ATTEMPTS,
    failed_trials,
    mark_trial_ended,
    queue_missing_points,
)
from sweep.tracking.schema import TAG_TRIAL_NUMBER
from tests.conftest import REPO_DATA, SWEEP_CLI, restore_sigint
from tests.sweep_tests.conftest import synthetic_config

# --- a planned point whose trial failed (item 3) -------------------------------------------


def _fail_next(study: optuna.Study, ended: str = "") -> None:
    trial = study.ask()
    if ended:
        mark_trial_ended(study, trial.number, ended)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def test_a_failed_planned_point_is_queued_again_until_its_last_attempt_fails(
    tmp_path: Path,
) -> None:
    cfg = synthetic_config(tmp_path)
    study = optuna.create_study()
    study.enqueue_trial({"compute_fraction": 0.0})  # annotate only, as a new sweep queues it
    _fail_next(study)  # its worker was killed
    assert queue_missing_points(study, cfg) == 1
    assert queue_missing_points(study, cfg) == 0  # queued once, not once per round
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"compute_fraction": 0.0}]
    for _ in range(PLANNED_ATTEMPTS - 2):
        _fail_next(study)
        assert queue_missing_points(study, cfg) == 1
    _fail_next(study)  # its last attempt: the point's own fault, not the trials' luck
    assert queue_missing_points(study, cfg) == 0
    assert len(failed_trials(study)) == PLANNED_ATTEMPTS


def test_an_interrupted_or_refused_trial_is_no_failure_and_its_point_comes_back(
    tmp_path: Path,
) -> None:
    cfg = synthetic_config(tmp_path)
    study = optuna.create_study()
    for ended in ("interrupted", "refused", "interrupted", "refused"):
        study.enqueue_trial({"compute_fraction": 1.0})
        _fail_next(study, ended)
    assert failed_trials(study) == []
    assert queue_missing_points(study, cfg) == 1  # four endings, no failure: it comes back


def test_a_measured_planned_point_is_not_queued_again(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"compute_fraction": 0.0})
    _fail_next(study)
    study.enqueue_trial({"compute_fraction": 0.0})
    trial = study.ask()
    trial.suggest_float("compute_fraction", 0.0, 1.0)  # as the space does: the queued value
    study.tell(trial, 0.5)
    assert queue_missing_points(study, cfg) == 0


# --- errors read whole; systematic at the first repeat (item 9) ---------------------------


def test_an_errors_last_line_is_read_from_the_whole_text() -> None:
    frames = "".join(f'  File "/x/mod{i}.py", line {i}, in f\n    g()\n' for i in range(60))
    ray_text = f"RayTaskError(ValueError): Traceback (most recent call last):\n{frames}"
    ray_text += "ValueError: Model '/nonexistent' could not be loaded (OSError)"
    assert len(ray_text) > 2000
    assert last_line(ray_text) == "ValueError: Model '/nonexistent' could not be loaded (OSError)"
    sqlalchemy = (
        "MlflowException: (sqlite3.OperationalError) database or disk is full\n"
        "[SQL: INSERT INTO metrics VALUES (?)]\n"
        "(Background on this error at: https://sqlalche.me/e/21/e3q8)"
    )
    assert last_line(sqlalchemy).endswith("database or disk is full")


def test_one_error_repeated_once_is_systematic() -> None:
    first = "ValueError: Model '/nonexistent' could not be loaded (OSError)"
    assert systematic([first]) is None
    assert systematic([first, "ValueError: Model '/nonexistent' could not be loaded"]) == first
    assert systematic([first, "MemoryError: CUDA out of memory"]) is None


def test_a_full_disk_is_one_line_that_names_the_store_and_the_resume(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path)
    try:  # raised as it is, with its cause, from Optuna's storage
        try:
            raise OSError(28, "database or disk is full")
        except OSError as cause:
            raise RuntimeError("in /site-packages/optuna/storages/_rdb/storage.py") from cause
    except RuntimeError as error:
        stopped = stopped_by_full_disk(cfg, error, kept=True)
    assert stopped is not None
    text = str(stopped)
    assert text.startswith(f"no space left on device while writing {tmp_path / 'optuna.db'};")
    assert f"--resume --root {tmp_path}" in text and "\n" not in text
    assert stopped_by_full_disk(cfg, ValueError("another"), kept=True) is None


# --- what the user reads (items 14, 15, 18) ------------------------------------------------


def test_a_resume_compares_paths_as_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with `--data-dir tests/data` and resumed with the same, from the same folder."""
    monkeypatch.chdir(REPO_DATA.parent.parent)
    stored = synthetic_config(tmp_path, trial={"data_dir": "tests/data"}).to_dict()
    assert stored["trial"]["data_dir"] == str(REPO_DATA)
    merged = options.resumed(stored, {"trial": {"data_dir": "tests/data"}})
    assert merged["trial"]["data_dir"] == str(REPO_DATA)
    with pytest.raises(ValueError, match="data_dir="):
        options.resumed(stored, {"trial": {"data_dir": "tests"}})


def test_a_grid_point_given_twice_is_measured_once() -> None:
    argv = ["grid", "--task", "fever", "--labels", "100,100,500", "--unlabelled", "0,0"]
    args: argparse.Namespace = build_parser().parse_args([*argv, "--objective", "synthetic"])
    cfg = options.grid_config(args)
    assert (cfg.grid_labels, cfg.grid_unlabelled, cfg.n_trials) == ([100, 500], [0], 2)


def test_the_sweeps_last_line_rounds_as_sweep_best_does() -> None:
    summary = SweepSummary(
        "s", "fever", 30.0, 3, 0, 0.49466910955544047,
        {"compute_fraction": 0.5, "temperature": 2.0}, "run", "uri",
    )  # fmt: skip
    text = _highest(summary)
    assert text == "highest score 0.4947 with compute_fraction=0.500, temperature=2"


# --- in a sweep (slow: Ray) -----------------------------------------------------------------


def _cannot_load(cfg: TrialConfig, report: Any = None) -> TrialResult:
    """Every trial fails as a teacher that cannot load does: an error whose text (with its
    cause's traceback, as Ray reports it) runs well past 2,000 characters."""
    try:
        raise OSError("no config.json under " + "/nonexistent/snapshots/0123456789abcdef" * 60)
    except OSError as cause:
        raise ValueError("Model '/nonexistent' could not be loaded (OSError)") from cause


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_systematic_failure_stops_at_its_first_repeat_and_fails_the_parent(
    tmp_path: Path,
) -> None:
    cfg = synthetic_config(tmp_path, n_trials=3)
    summary = run_sweep(cfg, objective=_cannot_load)
    assert (summary.n_finished, summary.n_failed) == (0, 2)  # not 3, nor 12
    assert "ValueError: Model '/nonexistent' could not be loaded (OSError)" in summary.stopped
    assert set(summary.failures) == {
        "ValueError: Model '/nonexistent' could not be loaded (OSError)"
    }
    tracker = Tracker(cfg.tracking)
    parent = tracker.client.get_run(tracker.find_sweep_run("fever", "syn") or "")
    assert parent.info.status == "FAILED"  # not FINISHED: it has no answer
    note = parent.data.tags[TAG_NOTE]
    assert note.startswith("**No trial finished** (2 failed)") and "'/nonexistent'" in note


def _holding(cpus: float) -> Any:
    import ray

    @ray.remote(num_cpus=cpus)
    def hold() -> None:
        time.sleep(300)

    return hold.remote()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_trial_that_waits_too_long_for_the_cluster_stops_the_sweep(tmp_path: Path) -> None:
    """Others hold the CPUs a trial asks for: it waits `--pending-timeout`, not for ever."""
    import ray

    held = _holding(2.0)  # the test cluster's two CPUs, as another user's job would
    try:
        cfg = synthetic_config(tmp_path, n_trials=2, pending_timeout_s=3.0)
        started = time.monotonic()
        with pytest.raises(ValueError, match=r"waited \d+ s for CPU 1") as raised:
            run_sweep(cfg)
        assert time.monotonic() - started < 60
    finally:
        ray.cancel(held, force=True)
    text = str(raised.value)
    assert "(--pending-timeout 3)" in text and f"--resume --root {tmp_path}" in text
    study = optuna.load_study(study_name="syn", storage=cfg.optuna_storage)
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    assert failed_trials(study) == []  # it never ran: no failure
    tracker = Tracker(cfg.tracking)
    parent = tracker.client.get_run(tracker.find_sweep_run("fever", "syn") or "")
    assert parent.info.status == "KILLED"  # --resume opens it again
    room = dataclasses.replace(cfg, pending_timeout_s=600.0)  # the cluster has room again
    assert run_sweep(room, resume=True).n_finished == 2


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_one_driver_per_sweep_and_a_double_ctrl_c_says_how_to_go_on(tmp_path: Path) -> None:
    """A second `--resume` of a running sweep is refused, naming the driver; that driver,
    Ctrl-C'd twice, still prints the command that continues it, which then loses nothing."""
    import ray

    address = ray.get_runtime_context().gcs_address
    argv = [*SWEEP_CLI, "--standin-work-seconds", "1.5", "--trials", "3", "--name", "one"]
    proc = subprocess.Popen(
        [*argv, "--root", str(tmp_path), "--address", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ""},
        preexec_fn=restore_sigint,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[1/3 done"):
            break
    resume = ["run", "--name", "one", "--resume", "--trials", "3", "--root", str(tmp_path)]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(resume) == 2
    assert f"is being run by another driver (pid {proc.pid} on " in err.getvalue()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # a second Ctrl-C, while the first is being handled
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("sweep: sweep 'one' interrupted; continue")
    hint = stderr.split("continue it with `", 1)[1].split("`", 1)[0]
    assert main(shlex.split(hint)[1:]) == 0
    study = optuna.load_study(study_name="one", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    complete = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert len(complete) == 3
    runs = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").trial_runs(task="fever", sweep="one")
    assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in runs) == complete


class _FillWhenTwoAreDone(io.StringIO):
    """The sweep's console: once two trials are done, the disk under its stores fills up."""

    def __init__(self, filler: Path) -> None:
        super().__init__()
        self.filler = filler

    def write(self, text: str) -> int:
        if text.startswith("[2/") and not self.filler.exists():
            with contextlib.suppress(OSError), self.filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
        return super().write(text)


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A folder on its own 8 MB file system (a tmpfs: root only), unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_full_disk_stops_the_sweep_in_one_line_and_resume_recovers(small_disk: Path) -> None:
    root = small_disk / "runs"
    cfg = synthetic_config(root, n_trials=4, standin_work_seconds=0.5)
    console = _FillWhenTwoAreDone(small_disk / "filler")
    with pytest.raises(ValueError) as raised:
        run_sweep(cfg, out=console)
    text = str(raised.value)
    assert text.startswith(f"no space left on device while writing {root}"), text
    assert f"continue it with `sweep run --name syn --resume --root {root}`" in text
    assert "\n" not in text and "sqlalche.me" not in console.getvalue()
    (small_disk / "filler").unlink()
    assert run_sweep(cfg, resume=True).n_finished == 4
    study = optuna.load_study(study_name="syn", storage=cfg.optuna_storage)
    complete = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    runs = Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn")
    assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in runs) == complete
    assert not Tracker(cfg.tracking).trial_runs(task="fever", sweep="syn", status="RUNNING")
