"""A real two-node Ray cluster on loopback: distillation trials land on the "teacher" node
type, annotation-only trials on the "student" one (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.loopback import Loopback, kill, loopback_cluster
from tests.conftest import SWEEP_CLI

pytestmark = pytest.mark.slow


def _two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head (student node type) and a worker (teacher node type), torn down by PID."""
    with loopback_cluster(head_cpus=1, head_resources={"student_node": 1}) as cluster:
        cluster.add_node("doa-teacher-1", cpus=1, resources={"teacher_node": 1})
        yield cluster.address, dict(cluster.env)


# The tests that leave the cluster as they found it share one (8 s to start); the one that
# kills a node has its own.
shared_cluster = pytest.fixture(scope="module")(_two_nodes)
loopback = pytest.fixture(_two_nodes)


def _placed_grid_sweep(address: str, root: Path) -> list[str]:
    """The paper's grid of fractions on the cluster, trials pinned to node types."""
    return [
        *SWEEP_CLI,
        *("--sampler", "grid", "--address", address, "--cpus-per-trial", "1"),
        *("--teacher-node-resource", "teacher_node", "--student-node-resource", "student_node"),
        *("--root", str(root)),
    ]


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
    shared_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = shared_cluster
    nodes = _node_ids(address, env)
    assert set(nodes) == {"teacher_node", "student_node"}
    run = subprocess.run(
        [*_placed_grid_sweep(address, tmp_path), "--trials", "11", "--concurrency", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    from sweep.tracking.mlflow_store import Tracker

    runs = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").trial_runs(task="fever")
    assert len(runs) == 11
    placed = {r.data.tags["mlflow.runName"]: r.data.tags["ray.node_id"] for r in runs}
    for name, node in placed.items():
        expected = nodes["student_node"] if "/f=0.00/" in name else nodes["teacher_node"]
        assert node == expected, (name, node, nodes)
    assert any("/f=0.00/" in name for name in placed)


def test_a_trial_no_node_can_hold_is_refused(
    shared_cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, env = shared_cluster
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
    loopback: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """The teacher node dies while trials run on it; a replacement node joins (as an
    autoscaler would start one); the affected trials are retried, the sweep finishes."""
    address, env = loopback
    argv = [
        *_placed_grid_sweep(address, tmp_path),
        *("--standin-work-seconds", "3", "--trials", "6", "--retries", "2"),
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
    assert kill("doa-teacher-1")  # the teacher node and everything running on it
    Loopback(address, env, "").add_node("doa-teacher-2", cpus=1, resources={"teacher_node": 1})
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output
    import optuna

    from sweep.tracking.mlflow_store import Tracker

    study = optuna.load_study(
        study_name="fever-B300-N1000", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(tracker.trial_runs(task="fever")) == 6
    assert not tracker.trial_runs(task="fever", status="RUNNING")
