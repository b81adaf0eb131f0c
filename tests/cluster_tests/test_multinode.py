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


def _cluster_pids(temp_dir: str) -> set[int]:
    roots = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    roots.add(int(entry.name))
            except OSError:
                continue
    return _descendants(roots)


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
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}", env
    finally:
        for pid in _cluster_pids(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _cluster_pids(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _cluster_pids(temp_dir)


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
            sys.executable,
            "-m",
            "sweep",
            "run",
            "--task",
            "fever",
            "--budget",
            "300",
            "--seed-labels",
            "1000",
            "--objective",
            "synthetic",
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
            sys.executable,
            "-m",
            "sweep",
            "run",
            "--task",
            "fever",
            "--budget",
            "300",
            "--seed-labels",
            "1000",
            "--objective",
            "synthetic",
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
