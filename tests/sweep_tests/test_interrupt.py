"""Interrupt a running sweep (Ctrl-C or SIGTERM), then resume it: nothing lost or repeated."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from search_spaces.spaces import FIRST_SHARES
from sweep.cli.main import main
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.schema import TAG_TRIAL_NUMBER
from tests.conftest import SWEEP_CLI, restore_sigint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume(
    tmp_path: Path, signum: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [
        *SWEEP_CLI,
        "--standin-work-seconds",
        "1.5",
        "--trials",
        "6",
        "--name",
        "intr",
        "--root",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=restore_sigint,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[2/6 done"):
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    hint = err.split("interrupted; continue it with `", 1)[1].split("`", 1)[0]
    assert shlex.split(hint) == [
        "sweep",
        "run",
        "--name",
        "intr",
        "--resume",
        "--root",
        str(tmp_path.resolve()),
    ]

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.load_study(study_name="intr", storage=storage)
    done_before = {t.number for t in study.trials if t.state.name == "COMPLETE"}
    assert 2 <= len(done_before) < 6
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    tracker = Tracker(tracking)
    assert not tracker.trial_runs(task="fever", sweep="intr", status="RUNNING")
    parent = tracker.find_sweep_run("fever", "intr")
    assert parent and tracker.client.get_run(parent).info.status == "KILLED"  # not RUNNING
    if signum == signal.SIGTERM:
        return  # SIGTERM becomes the same interrupt: the resume below is SIGINT's alone

    # The hint, run as printed from another folder (`sweep` is `main`).
    monkeypatch.chdir(tmp_path.parent)
    assert main(shlex.split(hint)[1:]) == 0
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    study = optuna.load_study(study_name="intr", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6 and done_before <= {t.number for t in complete}
    finished = tracker.trial_runs(task="fever", sweep="intr")
    numbers = [int(r.data.tags[TAG_TRIAL_NUMBER]) for r in finished]
    assert sorted(numbers) == sorted(t.number for t in complete)  # one run each, none twice
    for run in finished:
        trial = study.trials[int(run.data.tags[TAG_TRIAL_NUMBER])]
        assert run.data.metrics["score"] == pytest.approx(trial.value)


def test_driver_killed_then_resumed(tmp_path: Path) -> None:
    """SIGKILL gives the driver no chance to clean up: resume must recover on its own (the
    previous search's planned points f = 0, 1, 0.5 included)."""
    argv = [
        *SWEEP_CLI,
        "--sampler",
        "tpe",
        "--standin-work-seconds",
        "1.5",
        "--trials",
        "5",
        "--name",
        "killed",
        "--root",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[2/5 done"):
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait(30)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    before = optuna.load_study(study_name="killed", storage=storage)
    done_before = {t.number for t in before.trials if t.state.name == "COMPLETE"}
    assert len(done_before) >= 2

    assert main(["run", "--name", "killed", "--resume", "--root", str(tmp_path)]) == 0
    study = optuna.load_study(study_name="killed", storage=storage)
    complete = {t.number for t in study.trials if t.state.name == "COMPLETE"}
    assert len(complete) == 5 and done_before <= complete
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    # The planned point in flight when the driver died was queued again, not dropped.
    shares = {t.params["compute_fraction"] for t in study.trials if t.state.name == "COMPLETE"}
    assert set(FIRST_SHARES) <= shares
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    finished = tracker.trial_runs(task="fever", sweep="killed")
    assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in finished) == sorted(complete)
    assert not tracker.trial_runs(task="fever", sweep="killed", status="RUNNING")
    # At most the in-flight trial was run again: one KILLED run stands for it.
    assert len(tracker.trial_runs(task="fever", sweep="killed", status="KILLED")) <= 1


def _session(sid: int) -> dict[int, str]:
    """The processes of a session (a driver started with `start_new_session`, its Ray and
    Ray's workers, which each lead a process group of their own): pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
            found[int(entry.name)] = cmdline
    return found


def _wait_for(sid: int, fragment: str, timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid, cmdline in _session(sid).items():
            if fragment in cmdline:
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no {fragment!r} process in {sorted(_session(sid).values())}")


def test_a_worker_the_gcs_and_the_driver_killed_in_one_sweep_lose_and_repeat_nothing(
    tmp_path: Path,
) -> None:
    """The annotate-only trial's worker is killed (SIGKILL), then the GCS, then the driver
    with its Ray; `--resume` then ends with every trial measured once, annotate only
    included, in Optuna and MLflow alike."""
    argv = [*SWEEP_CLI, "--standin-work-seconds", "1", "--trials", "3", "--name", "fault"]
    proc = subprocess.Popen(
        [*argv, "--root", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ""},
        start_new_session=True,
    )
    assert proc.stdout is not None
    # The first trial is annotate only (f = 0): kill its worker while it runs.
    os.kill(_wait_for(proc.pid, "ray::ImplicitFunc.train"), signal.SIGKILL)
    for line in proc.stdout:
        if line.startswith("[1/3 done"):
            break
    os.kill(_wait_for(proc.pid, "gcs_server"), signal.SIGKILL)
    time.sleep(1.0)
    for pid in _session(proc.pid):  # the driver and what is left of its Ray
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(30)

    assert main(["run", "--name", "fault", "--resume", "--root", str(tmp_path)]) == 0
    study = optuna.load_study(study_name="fault", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    complete = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert len(complete) == 3 and not [t for t in study.trials if t.state.name == "RUNNING"]
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    finished = tracker.trial_runs(task="fever", sweep="fault")
    assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in finished) == complete
    shares = [float(r.data.params["compute_fraction"]) for r in finished]
    assert len(shares) == len(set(shares)) and 0.0 in shares  # none twice, the baseline once
    assert not tracker.trial_runs(task="fever", sweep="fault", status="RUNNING")
