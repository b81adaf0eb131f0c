"""Benchmark 10: the share of money spent on compute along the cost/quality Pareto front, on
grids this project measured.

The paper's second finding: on the front of its labelled x unlabelled grids, compute takes
40-87 % of the money at small budgets and 5-15 % at large ones. This runs `sweep grid`
(real training, `--meter paper`, `cpu-small` with every dev row scored) on BBC News and FEVER,
at labels x unlabelled sized for this CPU (one seed a point, scored on dev), and prints every
point's dollars, compute share and dev score with its 90 % interval, the Pareto front with
each front point's compute share, and the mean share over the front's cheaper and dearer
halves beside the paper's ranges. The paper's budgets run to hundreds of dollars; these grids
cost $4-$230, so "small" and "large" are each grid's own. Beside them: the median share over
every grid point (what any point would say, front or not), and how many steps along the front
gain more than their own interval (a front whose steps are within noise says little). The
run writes `bench/results/pareto_share-<date>.json`.

    DOA_DATA_DIR=path/to/full/splits python bench/pareto_share.py [--root runs/bench/pareto_share]

`--root` keeps the grids: a rerun resumes them and trains only what is missing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results_file import current_commit, write_result_file

# (task, grid name, labels, unlabelled): L + U stays within the training split (BBC News
# 1,625 rows, FEVER 5,000), so every point distils the pool it paid for; every dev row is
# scored (the caps below are above both). A task's grids are read as one: FEVER's second adds
# 30 labels, where compute can be most of the money (at 100 labels and the 3,200 examples the
# pool allows, it is at most 31 %).
GRIDS = (
    ("bbc_news", "pareto", "10,30,100", "0,400,1200"),
    ("fever", "pareto", "100,400,1600", "0,800,3200"),
    ("fever", "pareto-low", "30", "0,800,3200"),
)
TINY_GRIDS = (("fever", "pareto", "20,60", "0,200"),)
# CI keeps the script working on the closed-form stand-in (the suite's time; `sweep grid`'s
# real trials have tests of their own).
TINY_TRIAL = ["--objective", "synthetic", "--standin-work-seconds", "0"]
PAPER_SMALL, PAPER_LARGE = "40-87 %", "5-15 %"


def run_grid(root: Path, task: str, grid: str, labels: str, unlabelled: str, tiny: bool) -> None:
    """`sweep grid`, as a user runs it; with --resume when an earlier run started it."""
    name = f"{task}-{grid}"
    command = [
        sys.executable, "-m", "sweep", "grid", "--task", task, "--labels", labels,
        "--unlabelled", unlabelled, "--meter", "paper", "--preset", "cpu-small",
        "--max-unlabelled", "5000", "--max-eval-examples", "1000",
        "--root", str(root), "--name", name, *(TINY_TRIAL if tiny else []),
    ]  # fmt: skip
    if (root / "mlflow.db").exists() and _rows(root, task, (name,)):
        command.append("--resume")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        shown = " ".join(command[2:])
        raise SystemExit(f"{shown} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")


def _rows(root: Path, task: str, names: tuple[str, ...]) -> list[Any]:
    from sweep.config import default_tracking
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials

    tracker = Tracker(default_tracking(str(root)))
    return [r for name in names for r in finished_trials(tracker, task=task, sweep=name)]


def measure(root: Path, task: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Every point of the task's grids, their front, and the front's compute shares."""
    from sweep.tracking.results import pareto_set

    rows = sorted(_rows(root, task, names), key=lambda r: (r.n_labels_used, r.n_unlabelled))
    front = pareto_set(rows)
    on_front = {r.run_id for r in front}
    points = [
        {
            "grid": r.sweep,
            "labels": r.n_labels_used,
            "unlabelled": int(r.n_unlabelled),
            "total_usd": r.practitioner_usd,
            "compute_usd": r.compute_spent_usd,
            "compute_share": r.compute_share,
            "dev_score": r.score,
            "dev_low": r.score_low,
            "dev_high": r.score_high,
            "test_score": r.test_score,
            "on_front": r.run_id in on_front,
            "run_id": r.run_id,
        }
        for r in rows
    ]
    # A step along the front is beyond noise when its score's interval lies above the score
    # of the front point before it.
    steps = [
        bool(b.score_low is not None and b.score_low > a.score)
        for a, b in itertools.pairwise(front)
    ]
    widths = [r.score_high - r.score_low for r in rows if r.score_low is not None]
    # The front's cheaper and dearer halves by dollars (a middle point in both).
    cheaper, dearer = front[: (len(front) + 1) // 2], front[len(front) // 2 :]
    return {
        "task": task,
        "points": points,
        "front_usd_and_share": [(r.practitioner_usd, r.compute_share) for r in front],
        "cheaper_half_share": float(np.mean([r.compute_share for r in cheaper])),
        "dearer_half_share": float(np.mean([r.compute_share for r in dearer])),
        "all_points_median_share": float(np.median([r.compute_share for r in rows])),
        "front_steps_beyond_noise": f"{sum(steps)} of {len(steps)}",
        "score_range": max(r.score for r in rows) - min(r.score for r in rows),
        "median_interval_width": float(np.median(widths)) if widths else float("nan"),
    }


def lines(grid: dict[str, Any]) -> list[str]:
    out = [
        f"{grid['task']}: labels  unlabelled  total $  compute $  compute share  dev score "
        "[90 %]  front"
    ]
    for p in grid["points"]:
        interval = "-" if p["dev_low"] is None else f"[{p['dev_low']:.3f}, {p['dev_high']:.3f}]"
        out.append(
            f"  {p['labels']:>6} {p['unlabelled']:>10} {p['total_usd']:>8.2f} "
            f"{p['compute_usd']:>9.2f} {p['compute_share']:>13.0%}  {p['dev_score']:.3f} "
            f"{interval}  {'*' if p['on_front'] else ''}"
        )
    front = ", ".join(f"${usd:.2f} {share:.0%}" for usd, share in grid["front_usd_and_share"])
    out.append(
        f"  front (dollars, compute share): {front}; mean share over its cheaper half "
        f"{grid['cheaper_half_share']:.0%} (the paper at small budgets: {PAPER_SMALL}), over its "
        f"dearer half {grid['dearer_half_share']:.0%} (at large budgets: {PAPER_LARGE}); every "
        f"point's median share {grid['all_points_median_share']:.0%}; front steps beyond noise "
        f"{grid['front_steps_beyond_noise']}; scores span {grid['score_range']:.3f} against a "
        f"median interval width of {grid['median_interval_width']:.3f}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="keep the grids here (default: a temporary folder)")
    parser.add_argument(
        "--tiny", action="store_true", help="one 2 x 2 FEVER grid of the stand-in objective (CI)"
    )
    parser.add_argument("--results", help="folder of the result file (default bench/results)")
    args = parser.parse_args()
    for name, value in (("RAY_USAGE_STATS_ENABLED", "0"), ("MLFLOW_DISABLE_TELEMETRY", "true")):
        os.environ.setdefault(name, value)
    if args.tiny:
        os.environ.setdefault(
            "DOA_DATA_DIR", str(Path(__file__).resolve().parents[1] / "tests" / "data")
        )
    commit = current_commit()
    grids = TINY_GRIDS if args.tiny else GRIDS
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        for task, grid, labels, unlabelled in grids:
            run_grid(root, task, grid, labels, unlabelled, args.tiny)
        tasks = dict.fromkeys(task for task, *_ in grids)
        measured = [
            measure(root, task, tuple(f"{t}-{g}" for t, g, *_ in grids if t == task))
            for task in tasks
        ]
    for grid in measured:
        print("\n".join(lines(grid)))
    shares = ", ".join(
        f"{g['task']} {g['cheaper_half_share']:.0%} (dearer half {g['dearer_half_share']:.0%})"
        for g in measured
    )
    last = (
        f"pareto share: mean compute share over the front's cheaper half {shares}; the paper: "
        f"{PAPER_SMALL} at small budgets, {PAPER_LARGE} at large; over the tasks, cheaper half: "
        f"{np.mean([g['cheaper_half_share'] for g in measured]):.2f}"
    )
    path = write_result_file(
        "pareto_share" + ("-tiny" if args.tiny else ""),
        {"grids": grids, "preset": "cpu-small", "meter": "paper", "seeds": 1, "scored": "dev"},
        {"grids": measured, "summary": last},
        folder=Path(args.results) if args.results else None,
        commit=commit,
    )
    print(f"result file: {path}")
    print(last)


if __name__ == "__main__":
    main()
