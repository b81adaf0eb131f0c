"""Benchmark 3: what the stage cache saves in a real sweep.

A real sweep (the labelled x unlabelled grid, 3 x 4 = 12 trials on BBC News with the
MiniLM teacher) in which teacher configurations repeat: every label count is distilled
into four pool sizes, so each teacher is trained once and its soft labels are extended by
prefix. It runs twice through `run_sweep`: with the shared stage cache, and with
`cache=False` (the baseline: every trial trains its own teacher and labels its own pool).
Real compute is the sweep ledger (`sweep_device_seconds`, every second each trial's
process ran). The scores of the two runs must be identical point by point. The last line
is the baseline's real compute over the cached run's (target: >= 3).

`--teacher-heavy` is the paper's proportion: there the teacher (T5-XXL, 20 epochs) costs
orders of magnitude more than the student (T5-Small), here the MiniLM-L6 teacher trains the
paper's 20 epochs on FEVER (labels 128, 256 x unlabelled 64-256) and the student 2 gold
epochs, so the teacher is most of a trial's compute; the script prints the measured share.

    python bench/stage_cache.py [--threads 2] [--teacher-heavy]
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
# FEVER comes from the samples shipped for the tests unless DOA_DATA_DIR names others.
os.environ.setdefault("DOA_DATA_DIR", str(Path(__file__).resolve().parents[1] / "tests" / "data"))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

GRID = ((32, 64, 96), (128, 256, 384, 512))
HEAVY_GRID = ((128, 256), (64, 128, 192, 256))
TINY_GRID = ((8,), (16, 32))  # one teacher, two pools: a hit and a prefix extension
# (task, trial fields) of each setting; the heavy one's teacher trains the paper's 20 epochs.
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("bbc_news", {}),
    "heavy": ("fever", {"teacher_epochs": 20, "student_epochs": 2}),
    "tiny": (
        "fever",
        {"teacher_epochs": 1, "student_epochs": 1, "min_distill_steps": 0, "max_eval_examples": 16},
    ),
}
Point = tuple[float, float, str, float]  # score, real device-seconds, cache outcome, teacher s


def run(
    root: Path,
    cache: bool,
    grid: tuple[tuple[int, ...], tuple[int, ...]],
    setting: str,
    threads: int,
) -> tuple[float, dict[tuple[int, float], Point]]:
    """(wall seconds, {(labels, unlabelled): (score, real device-seconds, cache outcome,
    seconds training the teacher)})."""
    from sweep.config import SweepConfig
    from sweep.engine.tuner import run_sweep
    from sweep.tracking.mlflow_store import Tracker

    task, fields = SETTINGS[setting]
    trial: dict[str, Any] = {
        "usd_per_device_hour": 75.0,
        "usd_per_label": 0.364,
        "max_eval_examples": 100,
        "n_threads": threads,
        **fields,
    }
    cfg = SweepConfig(
        name="cache" if cache else "no-cache",
        task=task,
        budget_usd=0.0,  # a grid has no sweep-wide budget
        compute_allowance_usd=20.0,  # each point buys its labels plus up to this compute
        n_seed_labels=0,
        n_trials=len(grid[0]) * len(grid[1]),
        preset="cpu-small",
        trial=trial,
        grid_labels=grid[0],
        grid_unlabelled=grid[1],
        cpus_per_trial=float(threads),
        cache=cache,
        root=str(root),
    )
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        run_sweep(cfg, out=quiet)
    wall = time.perf_counter() - started
    points = {}
    for r in Tracker(cfg.tracking).trial_runs(task=cfg.task, sweep=cfg.name):
        m = r.data.metrics
        key = (int(m["n_labels_used"]), m["n_unlabelled"])
        points[key] = (
            m["score"],
            m["sweep_device_seconds"],
            r.data.tags.get("teacher_cache", ""),
            m.get("seconds_teacher", 0.0),
        )
    return wall, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--teacher-heavy", action="store_true", help="the teacher most of the compute (paper)"
    )
    parser.add_argument("--tiny", action="store_true", help="a 1 x 2 grid on FEVER (CI)")
    args = parser.parse_args()
    setting = "tiny" if args.tiny else "heavy" if args.teacher_heavy else "default"
    grid = {"tiny": TINY_GRID, "heavy": HEAVY_GRID, "default": GRID}[setting]
    from sweep.engine.raystart import RayStart

    ray_start = RayStart(None)  # one Ray for both sweeps (each would start its own)
    ray_start.wait()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cached_wall, cached = run(Path(tmp) / "cache", True, grid, setting, args.threads)
            plain_wall, plain = run(Path(tmp) / "plain", False, grid, setting, args.threads)
    finally:
        ray_start.end()
    if cached.keys() != plain.keys():
        raise SystemExit(
            f"the two sweeps ran different points: {sorted(cached)} vs {sorted(plain)}"
        )
    differ = [k for k in cached if cached[k][0] != plain[k][0]]
    print(f"{len(cached)} grid points (labels x unlabelled)")
    for key in sorted(cached):
        print(
            f"  L={key[0]:>3} U={key[1]:>4.0f}: score {cached[key][0]:.4f} / {plain[key][0]:.4f}, "
            f"real {cached[key][1]:6.1f} s cached ({cached[key][2]}) / {plain[key][1]:6.1f} s"
        )
    with_cache = sum(v[1] for v in cached.values())
    without = sum(v[1] for v in plain.values())
    teacher = sum(v[3] for v in plain.values())  # the stage's seconds, logged with each trial
    print(
        f"without the cache, training teachers took {teacher:.0f} s of the {without:.0f} s "
        f"({teacher / without:.0%}); the rest of a trial {(without - teacher) / len(plain):.1f} s "
        f"on average, a teacher {teacher / len(plain):.1f} s"
    )
    print(
        f"real compute: {with_cache:.0f} s with the cache, {without:.0f} s without; sweep wall "
        f"{cached_wall:.0f} s / {plain_wall:.0f} s; scores identical: {not differ}"
    )
    if differ:
        raise SystemExit(f"scores differ at {differ}")
    print(f"real compute without the cache / with it: {without / with_cache:.2f}")


if __name__ == "__main__":
    main()
