"""A real multi-node Ray cluster on one machine (loopback), for tests and benchmarks.

Each node is a `ray start` process tree with its own resources; the cluster is torn down
by the PIDs of its processes (found through /proc), never with `ray stop`, which would also
stop any other Ray on the machine. Ray 2.60's token authentication is disabled: every node
is on 127.0.0.1.
"""

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

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


def processes(marker: str) -> set[int]:
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


def kill(marker: str, timeout_s: float = 20.0) -> set[int]:
    """SIGKILL every process of `marker` and wait until they are gone; returns their PIDs."""
    pids = processes(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if processes(marker):
        raise RuntimeError(f"processes of {marker!r} survived SIGKILL for {timeout_s} s")
    return pids


@dataclass(frozen=True)
class Loopback:
    address: str
    env: Mapping[str, str]
    temp_dir: str

    def add_node(self, name: str, cpus: int, resources: Mapping[str, float] | None = None) -> None:
        """Start one more worker node (as an autoscaler would)."""
        _ray_start([f"--address={self.address}", f"--node-name={name}"], cpus, resources, self.env)


def _ray_start(
    args: list[str], cpus: int, resources: Mapping[str, float] | None, env: Mapping[str, str]
) -> None:
    subprocess.run(
        [
            RAY,
            "start",
            *args,
            f"--num-cpus={cpus}",
            f"--resources={json.dumps(dict(resources or {}))}",
            "--disable-usage-stats",
        ],
        env=dict(env),
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextlib.contextmanager
def loopback_cluster(
    head_cpus: int = 1, head_resources: Mapping[str, float] | None = None
) -> Iterator[Loopback]:
    """A head node on a free port; add workers with `Loopback.add_node`. Killed on exit,
    workers included (node names are prefixed with the cluster's temp dir name)."""
    temp_dir = tempfile.mkdtemp(prefix="doa-loopback-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    cluster = Loopback(f"127.0.0.1:{_free_port()}", env, temp_dir)
    port = cluster.address.rsplit(":", 1)[1]
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=false",
            ],
            head_cpus,
            head_resources,
            env,
        )
        yield cluster
    finally:
        kill(temp_dir)
