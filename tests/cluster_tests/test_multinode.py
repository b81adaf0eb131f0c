"""A real two-node Ray cluster on loopback: distillation trials land on the "teacher" node
type, annotation-only trials on the "student" one (slow)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SWEEP_CLI

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _descendants(roots: set[int]) -> set[int]:
    """Every process below `roots`, read from /proc (no psutil needed)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":  # a killed process waiting to be reaped is gone
                    parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = roots & set(parents), roots & set(parents)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _cluster_pids(marker: str) -> set[int]:
    """Processes whose command line holds `marker` (the cluster's temp dir, a node's name),
    with all their descendants."""
    roots = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    roots.add(int(entry.name))
            except OSError:
                continue
    return _descendants(roots)


def _kill(marker: str) -> set[int]:
    pids = _cluster_pids(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _cluster_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _cluster_pids(marker)
    return pids


@pytest.fixture
def loopback_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head (student node type) and a worker (teacher node type), torn down by PID."""
    temp_dir = tempfile.mkdtemp(prefix="doa-mn-", dir="/tmp")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run(
            [
                RAY,
                "start",
                "--head",
                f"--port={port}",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=false",
                '--resources={"student_node": 1}',
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                RAY,
                "start",
                f"--address=127.0.0.1:{port}",
                '--resources={"teacher_node": 1}',
                "--node-name=doa-teacher-1",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}", env
    finally:
        _kill(temp_dir)


def _node_ids(address: str, env: dict[str, str]) -> dict[str, str]:
    code = (
        f"import json, ray; ray.init(address={address!r}, log_to_driver=False);"
        "print(json.dumps({k: n['NodeID'] for n in ray.nodes() if n['Alive'] "
        "for k in ('teacher_node', 'student_node') if k in n['Resources']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_trials_are_placed_by_strategy(
    loopback_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = loopback_cluster
    nodes = _node_ids(address, env)
    assert set(nodes) == {"teacher_node", "student_node"}
    run = subprocess.run(
        [
            *SWEEP_CLI,
            "--sampler",
            "grid",
            "--trials",
            "11",
            "--concurrency",
            "2",
            "--address",
            address,
            "--teacher-node-resource",
            "teacher_node",
            "--student-node-resource",
            "student_node",
            "--cpus-per-trial",
            "1",
            "--root",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    from sweep.tracking import Tracker

    runs = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").trial_runs(task="fever")
    assert len(runs) == 11
    placed = {r.data.tags["mlflow.runName"]: r.data.tags["ray.node_id"] for r in runs}
    for name, node in placed.items():
        expected = nodes["student_node"] if "/f=0.00/" in name else nodes["teacher_node"]
        assert node == expected, (name, node, nodes)
    assert any("/f=0.00/" in name for name in placed)


def test_a_trial_no_node_can_hold_is_refused(
    loopback_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = loopback_cluster
    run = subprocess.run(
        [
            *SWEEP_CLI,
            "--trials",
            "2",
            "--address",
            address,
            "--teacher-gpus",
            "4",
            "--root",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 2
    assert "a distillation trial needs 1 CPU, 4 GPU, which no node of the cluster has" in (
        run.stderr
    )


def test_losing_the_teacher_node_mid_sweep_loses_nothing(
    loopback_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """The teacher node dies while trials run on it; a replacement node joins (as an
    autoscaler would start one); the affected trials are retried, the sweep finishes."""
    address, env = loopback_cluster
    argv = [
        *SWEEP_CLI,
        "--standin-work-seconds",
        "3",
        "--sampler",
        "grid",
        "--trials",
        "6",
        "--retries",
        "2",
        "--address",
        address,
        "--teacher-node-resource",
        "teacher_node",
        "--student-node-resource",
        "student_node",
        "--cpus-per-trial",
        "1",
        "--root",
        str(tmp_path),
    ]
    sweep = subprocess.Popen(
        argv,
        env={**env, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert sweep.stdout is not None
    seen = []
    for line in sweep.stdout:
        seen.append(line)
        if line.startswith("[1/6 done"):
            break
    assert sweep.poll() is None, "".join(seen)
    assert _kill("doa-teacher-1")  # the teacher node and everything running on it
    subprocess.run(
        [
            RAY,
            "start",
            f"--address={address}",
            '--resources={"teacher_node": 1}',
            "--node-name=doa-teacher-2",
            "--num-cpus=1",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output
    import optuna

    from sweep.tracking import Tracker

    study = optuna.load_study(
        study_name="fever-B300-N1000", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(tracker.trial_runs(task="fever")) == 6
    assert not tracker.trial_runs(task="fever", status="RUNNING")
