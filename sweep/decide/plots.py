"""PNG plots of finished trials: score against compute fraction, the cost/quality Pareto
front across budgets, and the optimisation history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sweep.decide.frontier import Frontier, recommend
from sweep.tracking.results import TrialRow, learned_nothing, pareto_set

STRATEGY_COLOURS = {"annotate": "tab:blue", "mixed": "tab:purple", "distill": "tab:red"}


def interval_errors(rows: Sequence[TrialRow]) -> np.ndarray:
    """Each trial's error bar, (below, above) its score: its 90 % interval where it has one
    (bootstrap over dev rows, widened to every seed's score), else the sd over its seeds."""
    below = [r.score - r.score_low if r.score_low is not None else r.score_std for r in rows]
    above = [r.score_high - r.score if r.score_high is not None else r.score_std for r in rows]
    errors: np.ndarray = np.maximum(np.array([below, above], dtype=float), 0.0)
    return errors


def trivial_lines(ax: Any, rows: Sequence[TrialRow]) -> None:
    """The trivial predictor's dev score as a horizontal line (one per distinct score)."""
    known = {
        (round(r.trivial_score, 4), r.trivial_predictor)
        for r in rows
        if r.trivial_score is not None
    }
    for k, (score, predictor) in enumerate(sorted(known)):
        ax.axhline(
            score,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"trivial: {predictor or 'baseline'}" if k < 3 else None,
        )


def score_vs_fraction(rows: Sequence[TrialRow], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, colour in STRATEGY_COLOURS.items():
        for nothing in (False, True):  # a trial that learned nothing: an open marker
            chosen = [r for r in rows if r.strategy == strategy and learned_nothing(r) is nothing]
            if not chosen:
                continue
            ax.errorbar(
                [r.compute_fraction for r in chosen],
                [r.score for r in chosen],
                yerr=interval_errors(chosen),
                fmt="o",
                color=colour,
                markerfacecolor="none" if nothing else colour,
                label=f"{strategy} (learned nothing)" if nothing else strategy,
                capsize=3,
                alpha=0.85,
            )
    trivial_lines(ax, rows)
    budgets = sorted({r.budget_usd for r in rows})
    ax.set_title(f"{rows[0].task}: score against compute share (budgets {budgets})")
    ax.set_xlabel("compute fraction of the budget")
    ax.set_ylabel("student dev score (90 % interval)")
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
    front = pareto_set(rows)
    ax.step(
        [r.practitioner_usd for r in front],
        [r.score for r in front],
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


def grid(rows: Sequence[TrialRow], path: Path) -> Path:
    """The paper's Pareto analysis: total dollars against score over the labelled x
    unlabelled grid, the frontier, and the compute share of each frontier point."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for n_unlabelled in sorted({r.n_unlabelled for r in rows}):
        chosen = [r for r in rows if r.n_unlabelled == n_unlabelled]
        ax.scatter(
            [r.practitioner_usd for r in chosen],
            [r.score for r in chosen],
            label=f"U={n_unlabelled:.0f}",
            alpha=0.75,
        )
    front = pareto_set(rows)
    ax.step([r.practitioner_usd for r in front], [r.score for r in front], where="post", color="k")
    for r in front:
        label = f"L={r.n_labels_used}, {r.compute_share:.0%} compute"
        ax.annotate(label, (r.practitioner_usd, r.score), fontsize=7)
    ax.set_xscale("log")
    ax.set_title(f"{rows[0].task}: labelled x unlabelled grid and its Pareto front")
    ax.set_xlabel("total dollars (labels + compute), log scale")
    ax.set_ylabel("student dev score")
    ax.grid(alpha=0.3)
    ax.legend(title="unlabelled", fontsize=8)
    return _save(fig, path)


def frontier(
    model: Frontier,
    budgets: Sequence[float],
    rows: Sequence[TrialRow],
    path: Path,
) -> Path:
    """Left: the recommended compute share against the budget, with its 90 % range. Right:
    the predicted cost/quality front (90 % predictive) with the measured trials on it."""
    low = min([*budgets, model.budget_range[0]])
    high = max([*budgets, model.budget_range[1]])
    dense = [float(b) for b in np.geomspace(low, high, 16)]
    recs = [recommend(model, b, draws=400) for b in dense]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(dense, [r.compute_fraction for r in recs], color="tab:red", label="recommended")
    left.fill_between(
        dense,
        [r.fraction_interval[0] for r in recs],
        [r.fraction_interval[1] for r in recs],
        color="tab:red",
        alpha=0.2,
        label="90 % range of the best share",
    )
    left.axvspan(*model.budget_range, color="grey", alpha=0.1, label="budgets with trials")
    left.set_xscale("log")
    left.set_ylim(-0.03, 1.03)
    left.set_xlabel("budget (USD), log scale")
    left.set_ylabel("compute share of the budget")
    left.legend(fontsize=8)
    right.plot(
        [r.spent_usd for r in recs], [r.score for r in recs], color="black", label="predicted front"
    )
    right.fill_between(
        [r.spent_usd for r in recs],
        [r.score_interval[0] for r in recs],
        [r.score_interval[1] for r in recs],
        color="grey",
        alpha=0.3,
    )
    right.errorbar(
        [r.practitioner_usd for r in rows],
        [r.score for r in rows],
        yerr=interval_errors(rows),
        fmt="o",
        markersize=4,
        capsize=2,
        label="trials (90 % interval)",
    )
    trivial_lines(right, rows)
    right.set_xscale("log")
    right.set_xlabel("dollars spent (labels + compute), log scale")
    right.set_ylabel("student dev score")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    weighed = ", ".join(f"{name} ({w:.2f})" for name, w in model.post.top(2))
    fig.suptitle(f"{rows[0].task}: the landscape posterior; weighed most {weighed}", fontsize=9)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def all_plots(rows: Sequence[TrialRow], out_dir: Path) -> list[Path]:
    task = rows[0].task
    grid_rows = [r for r in rows if r.grid]
    rows = [r for r in rows if not r.grid]
    extra = [grid(grid_rows, out_dir / f"{task}_grid.png")] if grid_rows else []
    if not rows:
        return extra
    return [
        *extra,
        score_vs_fraction(rows, out_dir / f"{task}_score_vs_fraction.png"),
        pareto(rows, out_dir / f"{task}_pareto.png"),
        history(rows, out_dir / f"{task}_history.png"),
    ]
