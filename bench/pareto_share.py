"""Benchmark 10: the share of money spent on compute along the cost/quality Pareto front, on
grids this project measured.

The paper's second finding: on the front of its labelled x unlabelled grids, compute takes
40-87 % of the money at small budgets and 5-15 % at large ones. This runs `sweep grid`
(real training, `--meter paper`, `cpu-small` with every dev row scored) on BBC News and FEVER,
at labels x unlabelled sized for this CPU, and prints for each grid every point's dollars,
compute share and dev score with its 90 % interval, the Pareto front, and the compute share
at the front's cheapest and dearest points beside the paper's ranges. Beside them: the same
share over every grid point (what any point would say, front or not), and whether each step
along the front gains more than its own interval (the landscape's difficulty: a front whose
steps are within noise says little). The run writes `bench/results/pareto_share-<date>.json`.

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

# (task, labels, unlabelled): L + U stays within the training split (BBC News 1,625 rows,
# FEVER 5,000), so every point distils the pool it paid for; every dev row is scored (the
# caps below are above both).
GRIDS = (
    ("bbc_news", "30,100,300", "0,400,1200"),
    ("fever", "100,400,1600", "0,800,3200"),
)
TINY_GRIDS = (("fever", "20,60", "0,200"),)
TINY_TRIAL = ["--teacher-epochs", "1", "--student-epochs", "1", "--distill-epochs", "1"]
PAPER_SMALL, PAPER_LARGE = "40-87 %", "5-15 %"


def run_grid(root: Path, task: str, labels: str, unlabelled: str, tiny: bool) -> None:
    """`sweep grid`, as a user runs it; with --resume when an earlier run started it."""
    name = f"{task}-pareto"
    command = [
        sys.executable, "-m", "sweep", "grid", "--task", task, "--labels", labels,
        "--unlabelled", unlabelled, "--meter", "paper", "--preset", "cpu-small",
        "--max-unlabelled", "5000", "--max-eval-examples", "1000",
        "--root", str(root), "--name", name, *(TINY_TRIAL if tiny else []),
    ]  # fmt: skip
    if (root / "mlflow.db").exists() and _rows(root, task):
        command.append("--resume")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[2:])} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
        )


def _rows(root: Path, task: str) -> list[Any]:
    from sweep.config import default_tracking
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials

    return finished_trials(Tracker(default_tracking(str(root))), task=task, sweep=f"{task}-pareto")


def _share(row: Any) -> float:
    return float(row.compute_spent_usd / row.practitioner_usd) if row.practitioner_usd else 0.0


def measure(root: Path, task: str) -> dict[str, Any]:
    """Every point of the task's grid, its front, and the front's compute shares."""
    from sweep.tracking.results import pareto_set

    rows = sorted(_rows(root, task), key=lambda r: (r.n_labels_used, r.n_unlabelled))
    front = pareto_set(rows)
    on_front = {r.run_id for r in front}
    points = [
        {
            "labels": r.n_labels_used,
            "unlabelled": int(r.n_unlabelled),
            "total_usd": r.practitioner_usd,
            "compute_usd": r.compute_spent_usd,
            "compute_share": _share(r),
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
    return {
        "task": task,
        "points": points,
        "front_cheapest_share": _share(front[0]),
        "front_dearest_share": _share(front[-1]),
        "front_budgets_usd": [r.practitioner_usd for r in front],
        "all_points_median_share": float(np.median([_share(r) for r in rows])),
        "front_steps_beyond_noise": f"{sum(steps)} of {len(steps)}",
        "score_range": max(r.score for r in rows) - min(r.score for r in rows),
        "median_interval_width": float(
            np.median([r.score_high - r.score_low for r in rows if r.score_low is not None])
        ),
    }


def lines(grid: dict[str, Any]) -> list[str]:
    out = [
        f"{grid['task']}: labels  unlabelled  total $  compute $  compute share  dev score "
        "[90 %]  front"
    ]
    for p in grid["points"]:
        out.append(
            f"  {p['labels']:>6} {p['unlabelled']:>10} {p['total_usd']:>8.2f} "
            f"{p['compute_usd']:>9.2f} {p['compute_share']:>13.0%}  {p['dev_score']:.3f} "
            f"[{p['dev_low']:.3f}, {p['dev_high']:.3f}]  {'*' if p['on_front'] else ''}"
        )
    out.append(
        f"  front: compute share {grid['front_cheapest_share']:.0%} at its cheapest point "
        f"(${grid['front_budgets_usd'][0]:.2f}; the paper at small budgets: {PAPER_SMALL}), "
        f"{grid['front_dearest_share']:.0%} at its dearest (${grid['front_budgets_usd'][-1]:.2f}; "
        f"the paper at large budgets: {PAPER_LARGE}); every point's median share "
        f"{grid['all_points_median_share']:.0%}; front steps beyond noise "
        f"{grid['front_steps_beyond_noise']}; scores span {grid['score_range']:.3f} against a "
        f"median interval width of {grid['median_interval_width']:.3f}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="keep the grids here (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="one 2 x 2 FEVER grid (CI)")
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
        measured = []
        for task, labels, unlabelled in grids:
            run_grid(root, task, labels, unlabelled, args.tiny)
            measured.append(measure(root, task))
    for grid in measured:
        print("\n".join(lines(grid)))
    last = (
        "pareto share: compute share at the front's cheapest point "
        + ", ".join(
            f"{g['task']} {g['front_cheapest_share']:.0%} (dearest {g['front_dearest_share']:.0%})"
            for g in measured
        )
        + (
            f"; the paper: {PAPER_SMALL} at small budgets, {PAPER_LARGE} at large; mean share at "
            f"the cheapest: {np.mean([g['front_cheapest_share'] for g in measured]):.2f}"
        )
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
