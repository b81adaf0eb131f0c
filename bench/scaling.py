"""Benchmark 5: scaling out on a loopback multi-node Ray cluster.

The same sweep (`--trials` single-threaded trials, each burning `--cpu-seconds` of CPU in
one thread before returning the synthetic stand-in's result) runs through `run_sweep` on a
cluster whose head holds no trials and which has one worker node of one CPU, then on one
with two such workers. Wall time is the sweep's, Ray's connection included. The baseline is
the one-worker run; the last line is its wall time over the two-worker one (target: >= 1.7).

    python bench/scaling.py [--trials 12] [--cpu-seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.loopback import loopback_cluster


def burning_trial(cfg: Any, report: Any = None, cpu_seconds: float = 3.0) -> Any:
    """A single-threaded trial: CPU work in this process, then the stand-in's result."""
    from objectives.standins import synthetic_trial

    started = time.process_time()
    x = 0
    while time.process_time() - started < cpu_seconds:
        x = (x * 31 + 7) % 1_000_003
    return synthetic_trial(cfg, report)


def sweep_wall_seconds(n_workers: int, trials: int, cpu_seconds: float, root: Path) -> float:
    from functools import partial

    from sweep.config import SweepConfig
    from sweep.engine.tuner import run_sweep

    with loopback_cluster(head_cpus=0) as cluster:
        for i in range(n_workers):
            cluster.add_node(f"{Path(cluster.temp_dir).name}-worker-{i}", cpus=1)
        os.environ.update(cluster.env)
        cfg = SweepConfig(
            name=f"scale-{n_workers}",
            task="fever",
            budget_usd=300.0,
            n_seed_labels=1000,
            n_trials=trials,
            objective="synthetic",
            sampler="random",
            concurrency=n_workers,
            cpus_per_trial=1.0,
            address=cluster.address,
            root=str(root / f"w{n_workers}"),
        )
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            run_sweep(cfg, out=quiet, objective=partial(burning_trial, cpu_seconds=cpu_seconds))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--cpu-seconds", type=float, default=3.0)
    parser.add_argument("--tiny", action="store_true", help="2 trials of 0.2 s (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.cpu_seconds = 2, 0.2
    with tempfile.TemporaryDirectory() as tmp:
        one = sweep_wall_seconds(1, args.trials, args.cpu_seconds, Path(tmp))
        two = sweep_wall_seconds(2, args.trials, args.cpu_seconds, Path(tmp))
    work = args.trials * args.cpu_seconds
    print(f"{args.trials} trials x {args.cpu_seconds:g} CPU-seconds ({work:g} s of work)")
    print(f"  1 worker node:  {one:6.1f} s wall")
    print(f"  2 worker nodes: {two:6.1f} s wall")
    print(f"speed-up with two worker nodes over one: {one / two:.2f}")


if __name__ == "__main__":
    main()
