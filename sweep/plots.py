"""PNG plots of finished trials: score against compute fraction, the cost/quality Pareto
front across budgets, and the optimisation history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sweep.results import TrialRow

STRATEGY_COLOURS = {"annotate": "tab:blue", "mixed": "tab:purple", "distill": "tab:red"}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (cost, score) not beaten by a cheaper-or-equal point with a higher score."""
    front: list[tuple[float, float]] = []
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or score > front[-1][1]:
            front.append((cost, score))
    return front


def score_vs_fraction(rows: Sequence[TrialRow], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, colour in STRATEGY_COLOURS.items():
        chosen = [r for r in rows if r.strategy == strategy]
        if chosen:
            ax.errorbar(
                [r.compute_fraction for r in chosen],
                [r.score for r in chosen],
                yerr=[r.score_std for r in chosen],
                fmt="o",
                color=colour,
                label=strategy,
                capsize=3,
                alpha=0.85,
            )
    budgets = sorted({r.budget_usd for r in rows})
    ax.set_title(f"{rows[0].task}: score against compute share (budgets {budgets})")
    ax.set_xlabel("compute fraction of the budget")
    ax.set_ylabel("student dev score (mean ± sd over seeds)")
    ax.set_xlim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(title="strategy")
    return _save(fig, path)


def pareto(rows: Sequence[TrialRow], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_budget: dict[float, list[TrialRow]] = defaultdict(list)
    for r in rows:
        by_budget[r.budget_usd].append(r)
    for budget, chosen in sorted(by_budget.items()):
        ax.scatter(
            [r.practitioner_usd for r in chosen],
            [r.score for r in chosen],
            label=f"B=${budget:g}",
            alpha=0.7,
        )
    front = pareto_front([(r.practitioner_usd, r.score) for r in rows])
    ax.step(
        [c for c, _ in front],
        [s for _, s in front],
        where="post",
        color="black",
        label="Pareto front",
    )
    ax.set_title(f"{rows[0].task}: cost/quality across budgets")
    ax.set_xlabel("dollars spent by the allocation (labels + compute)")
    ax.set_ylabel("student dev score")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def history(rows: Sequence[TrialRow], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_sweep: dict[str, list[TrialRow]] = defaultdict(list)
    for r in rows:
        by_sweep[r.sweep].append(r)
    for sweep, chosen in sorted(by_sweep.items()):
        chosen = sorted(chosen, key=lambda r: r.start_time_ms)
        scores = [r.score for r in chosen]
        best = [max(scores[: i + 1]) for i in range(len(scores))]
        xs = list(range(1, len(scores) + 1))
        (line,) = ax.plot(xs, best, label=f"{sweep} best so far")
        ax.scatter(xs, scores, color=line.get_color(), alpha=0.5, s=18)
    ax.set_title(f"{rows[0].task}: optimisation history")
    ax.set_xlabel("finished trial")
    ax.set_ylabel("student dev score")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def all_plots(rows: Sequence[TrialRow], out_dir: Path) -> list[Path]:
    task = rows[0].task
    return [
        score_vs_fraction(rows, out_dir / f"{task}_score_vs_fraction.png"),
        pareto(rows, out_dir / f"{task}_pareto.png"),
        history(rows, out_dir / f"{task}_history.png"),
    ]
