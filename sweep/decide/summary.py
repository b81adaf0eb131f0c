"""The sweep's answer where MLflow users look first, kept current while it runs.

As trials finish, the sweep's parent run and its task's experiment get a one-paragraph
description (the best split at the budget with its interval, annotate only beside it, the
dollars spent deciding); the parent's artifacts get the plots and the `sweep best` table.
How often, and in which thread, is the engine's business (`sweep.engine.refresher`). The
experiment's
description is that of the sweep that reported last: each sweep keeps its own on its
parent run.
"""

from __future__ import annotations

import logging
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.results import (
    BestAllocation,
    TrialRow,
    annotate_only_baseline,
    best_of,
    best_trial,
    finished_trials,
    format_best,
    learned_rows,
    nothing_learned_note,
    pareto_set,
    rank_key,
)

logger = logging.getLogger(__name__)

ARTIFACT_FOLDER = "summary"


def percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def _score(row: TrialRow | BestAllocation) -> str:
    """E.g. "0.861 (0.853–0.868)": the score and its 90 % interval."""
    if row.score_low is None or row.score_high is None:
        return f"{row.score:.3f} (no interval)"
    return f"{row.score:.3f} ({row.score_low:.3f}–{row.score_high:.3f})"


def _at_budget(rows: Sequence[TrialRow], budget_usd: float) -> list[TrialRow]:
    return [r for r in rows if not r.grid and abs(r.budget_usd - budget_usd) < 1e-9]


def _best_with_compute(best: BestAllocation, rows: Sequence[TrialRow]) -> TrialRow | None:
    at_budget = learned_rows(_at_budget(rows, best.budget_usd))
    return best_trial(r for r in at_budget if r.compute_fraction > 0.0)


def _versus(best: BestAllocation) -> str:
    """E.g. "+0.057, beyond both intervals": the gain over annotate only, and whether it
    exceeds the noise (the intervals do not overlap)."""
    gain = f"{best.vs_annotate_only or 0.0:+.3f}"
    if best.beyond_noise is None:
        return gain
    return f"{gain}, {'beyond both intervals' if best.beyond_noise else 'within the noise'}"


def budget_sentence(best: BestAllocation, rows: Sequence[TrialRow]) -> str:
    """The best split at one budget against annotate only, the answer first: the UI shows
    a description's first line until it is unfolded."""
    head = f"**B = ${best.budget_usd:g}:"
    if best.nothing_learned:
        return f"{head} nothing learned at this budget with this recipe**: {_nothing(best)}."
    if best.compute_fraction == 0.0:
        other = _best_with_compute(best, rows)
        beside = (
            f"; the best split with compute (f = {other.compute_fraction:.2f}) scores "
            f"{_score(other)}"
            if other is not None
            else ""
        )
        return (
            f"{head} annotate only**, score {_score(best)}{beside}. It buys "
            f"{best.n_new_labels:,} labels to add to the {best.n_seed_labels:,} owned."
            + (f" Note: {best.note}." if best.note else "")
        )
    base = annotate_only_baseline(best, _at_budget(rows, best.budget_usd))
    versus = (
        f" against {_score(base)} annotating only ({_versus(best)})"
        if base is not None
        else "; annotate only (f = 0) has no finished trial yet"
    )
    bought = f"; annotate only buys {base.n_new_labels:,}" if base is not None else ""
    return (
        f"{head} spend {percent(best.compute_fraction)} on compute**, score {_score(best)}"
        f"{versus}. The split ({best.strategy}) buys {best.n_new_labels:,} labels to add to "
        f"the {best.n_seed_labels:,} owned and distils {best.n_unlabelled:,.0f} unlabelled "
        f"examples{bought}." + (f" Note: {best.note}." if best.note else "")
    )


def _nothing(best: BestAllocation) -> str:
    """Why no split is recommended: the note without its headline, which the sentence has."""
    return best.note.removeprefix("nothing learned at this budget with this recipe: ")


def range_sentence(task: str, rows: Sequence[TrialRow], tracking_uri: str = "") -> str:
    """A sweep over budgets: its best trial and its cost/quality front, annotate only beside
    (among the trials that learned something)."""
    if not learned_rows(rows):
        return f"**Budgets tried: {nothing_learned_note(task, rows)}**."
    rows = learned_rows(rows)
    best = max(rows, key=rank_key)
    front = pareto_set(rows)
    low, high = min(r.budget_usd for r in rows), max(r.budget_usd for r in rows)
    text = (
        f"**Budgets tried ${low:,.0f}–${high:,.0f}: the best score, {_score(best)}, spends "
        f"{percent(best.compute_fraction)} of B = ${best.budget_usd:,.0f} on compute**"
    )
    top = best_trial(r for r in rows if r.compute_fraction == 0.0)
    if top is not None:
        text += f"; annotating only, the best is {_score(top)} at B = ${top.budget_usd:,.0f}"
    return text + (
        f". The cost/quality front has {len(front)} trials, from {front[0].score:.3f} for "
        f"${front[0].practitioner_usd:,.0f} (`{_best_command(task, tracking_uri)}`)."
    )


def posterior_sentence(best: BestAllocation, rows: Sequence[TrialRow], tracking_uri: str) -> str:
    """The landscape posterior's answer at the budget, as `sweep best` gives it beside the
    best trial (from the store's trials when it is named, else from `rows`); "" when
    nothing learned."""
    from sweep.decide import evidence

    a = (
        evidence.answer_at(Tracker(tracking_uri), best)
        if tracking_uri
        else evidence.answer_from(rows, best)
    )
    if a is None:
        return ""
    low, high = a.fraction_interval
    return (
        "The landscape posterior (every trial weighed by its noise) answers "
        f"**{percent(a.compute_fraction)} on compute** (90 % range {percent(low)}–"
        f"{percent(high)}): {a.n_new_labels:,} labels bought, {a.n_unlabelled:,} distilled, "
        f"${a.spent_usd:,.2f} of ${best.budget_usd:g} spent; expected regret "
        f"{100 * a.expected_regret:.2f} points."
    )


def _best_command(task: str, tracking_uri: str) -> str:
    """The `sweep best` command that reads this store, complete: it works as printed."""
    store = f" --tracking-uri {shlex.quote(tracking_uri)}" if tracking_uri else ""
    return f"sweep best --task {shlex.quote(task)} --pareto{store}"


def grid_sentence(rows: Sequence[TrialRow]) -> str:
    """The best point of a labelled x unlabelled grid, and the best without compute (among
    the points that learned something)."""
    if not learned_rows(rows):
        return f"**Grid: {nothing_learned_note(rows[0].task, rows)}**."
    rows = learned_rows(rows)
    best = max(rows, key=rank_key)
    text = (
        f"**Grid: {best.n_labels_used:,} labels + {best.n_unlabelled:,.0f} unlabelled** "
        f"(${best.practitioner_usd:,.2f}, {percent(best.compute_share)} compute), "
        f"score {_score(best)}"
    )
    top = best_trial(r for r in rows if r.n_unlabelled == 0)
    if top is not None and best.n_unlabelled != 0:
        text += (
            f"; annotating only, the best is {top.n_labels_used:,} labels "
            f"(${top.practitioner_usd:,.2f}), score {_score(top)}"
        )
    return text + f" ({len(rows)} grid points)."


def paragraph(
    task: str,
    sweep: str,
    rows: Sequence[TrialRow],
    best: Sequence[BestAllocation],
    tracking_uri: str = "",
) -> str:
    """The sweep's answer in one paragraph of markdown (MLflow renders descriptions so)."""
    if not rows:
        return f"**Sweep `{sweep}` ({task}): no finished trial yet.**"
    budget_rows = [r for r in rows if not r.grid]
    sentences = []
    if len(best) == 1:
        sentences += [
            budget_sentence(best[0], budget_rows),
            posterior_sentence(best[0], budget_rows, tracking_uri),
        ]
    elif best:  # a budget-range sweep: each budget was sampled once or so
        sentences.append(range_sentence(task, budget_rows, tracking_uri))
    grid_rows = [r for r in rows if r.grid]
    if grid_rows:
        sentences.append(grid_sentence(grid_rows))
    spent = sum(r.sweep_spent_usd for r in rows)
    sentences.append(
        f"Sweep `{sweep}` on {task}: {len(rows)} finished trials; deciding cost "
        f"**${spent:,.2f}** of device time. Scores are dev scores with their 90 % interval "
        "(bootstrap over dev examples, widened to every seed's score)."
    )
    return " ".join(s for s in sentences if s)


def write_artifacts(
    tracker: Tracker, parent_run_id: str, rows: Sequence[TrialRow], table: str
) -> list[str]:
    """The plots (score against share, Pareto, history, grid; the frontier once the trials
    can fit it) and the `sweep best` table, into the parent's `summary/` artifacts."""
    from sweep.decide import evidence, frontier, plots

    with tempfile.TemporaryDirectory(prefix="doa-summary-") as tmp:
        out = Path(tmp)
        paths = plots.all_plots(rows, out)
        try:  # the posterior weighs the trials that learned: a constant predictor is no point
            cost = evidence.task_cost_model(rows[0].task)
            model = frontier.fit(learned_rows(rows), rows[0].task, cost=cost)
            budgets = sorted({r.budget_usd for r in rows if not r.grid}) or list(model.budget_range)
            paths.append(plots.frontier(model, budgets, rows, out / f"{rows[0].task}_frontier.png"))
        except (frontier.NotEnoughTrials, ValueError) as exc:
            logger.info("no frontier plot yet: %s", exc)
        if table:
            paths.append(out / "best.txt")
            paths[-1].write_text(table + "\n", encoding="utf-8")
        for path in paths:
            tracker.log_artifact(parent_run_id, str(path), ARTIFACT_FOLDER)
        return [p.name for p in paths]


def refresh(
    tracker: Tracker, task: str, sweep: str, parent_run_id: str, artifacts: bool = True
) -> str:
    """Write the sweep's answer into the descriptions (and the artifacts); returns it."""
    rows = finished_trials(tracker, task, sweep)
    best = best_of(rows)  # the rows are this sweep's already: one read of the store
    text = paragraph(task, sweep, rows, best, tracker.tracking_uri)
    tracker.describe(parent_run_id, text)
    if rows:  # a sweep with nothing to say leaves another sweep's answer in place
        tracker.describe_experiment(tracker.experiment_id(task), text)
        if artifacts:
            write_artifacts(tracker, parent_run_id, rows, format_best(best) if best else "")
    return text
