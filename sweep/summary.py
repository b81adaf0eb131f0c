"""The sweep's answer where MLflow users look first, kept current while it runs.

As trials finish, the sweep's parent run and its task's experiment get a one-paragraph
description (the best split at the budget with its interval, annotate only beside it, the
dollars spent deciding; at most every 2 s); the parent's artifacts get the plots and the
`sweep best` table, at most once a minute and at the end of each Tune round. The writing
runs in a thread of its own, never in the way of the next trial. The experiment's
description is that of the sweep that reported last: each sweep keeps its own on its
parent run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep.results import (
    BestAllocation,
    TrialRow,
    best_of,
    finished_trials,
    format_best,
    pareto_set,
)
from sweep.tracking import Tracker

logger = logging.getLogger(__name__)

ARTIFACTS_EVERY_S = 60.0  # plots take seconds: not after every trial of a fast sweep
REFRESH_EVERY_S = 2.0  # descriptions: a search of the store, not after every fast trial
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


def _annotate_only(best: BestAllocation, rows: Sequence[TrialRow]) -> TrialRow | None:
    """The annotate-only trial `best` is compared with: the latest at its budget, as
    `sweep best` picks it."""
    same = [r for r in _at_budget(rows, best.budget_usd) if r.compute_fraction == 0.0]
    return max(same, key=lambda r: r.start_time_ms) if same else None


def _best_with_compute(best: BestAllocation, rows: Sequence[TrialRow]) -> TrialRow | None:
    same = [r for r in _at_budget(rows, best.budget_usd) if r.compute_fraction > 0.0]
    return max(same, key=lambda r: (r.score, -r.practitioner_usd)) if same else None


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
        )
    base = _annotate_only(best, rows)
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
        f"examples{bought}."
    )


def range_sentence(task: str, rows: Sequence[TrialRow]) -> str:
    """A sweep over budgets: its best trial and its cost/quality front, annotate only beside."""
    best = max(rows, key=lambda r: (r.score, -r.practitioner_usd))
    front = pareto_set(rows)
    low, high = min(r.budget_usd for r in rows), max(r.budget_usd for r in rows)
    text = (
        f"**Budgets tried ${low:,.0f}–${high:,.0f}: the best score, {_score(best)}, spends "
        f"{percent(best.compute_fraction)} of B = ${best.budget_usd:,.0f} on compute**"
    )
    annotate = [r for r in rows if r.compute_fraction == 0.0]
    if annotate:
        top = max(annotate, key=lambda r: (r.score, -r.practitioner_usd))
        text += f"; annotating only, the best is {_score(top)} at B = ${top.budget_usd:,.0f}"
    return text + (
        f". The cost/quality front has {len(front)} trials, from {front[0].score:.3f} for "
        f"${front[0].practitioner_usd:,.0f} (`sweep best --task {task} --pareto`)."
    )


def grid_sentence(rows: Sequence[TrialRow]) -> str:
    """The best point of a labelled x unlabelled grid, and the best without compute."""
    best = max(rows, key=lambda r: (r.score, -r.practitioner_usd))
    share = best.compute_spent_usd / best.practitioner_usd if best.practitioner_usd else 0.0
    text = (
        f"**Grid: {best.n_labels_used:,} labels + {best.n_unlabelled:,.0f} unlabelled** "
        f"(${best.practitioner_usd:,.2f}, {percent(share)} compute), score {_score(best)}"
    )
    annotate = [r for r in rows if r.n_unlabelled == 0]
    if annotate and best.n_unlabelled != 0:
        top = max(annotate, key=lambda r: (r.score, -r.practitioner_usd))
        text += (
            f"; annotating only, the best is {top.n_labels_used:,} labels "
            f"(${top.practitioner_usd:,.2f}), score {_score(top)}"
        )
    return text + f" ({len(rows)} grid points)."


def paragraph(
    task: str, sweep: str, rows: Sequence[TrialRow], best: Sequence[BestAllocation]
) -> str:
    """The sweep's answer in one paragraph of markdown (MLflow renders descriptions so)."""
    if not rows:
        return f"**Sweep `{sweep}` ({task}): no finished trial yet.**"
    budget_rows = [r for r in rows if not r.grid]
    sentences = []
    if len(best) == 1:
        sentences.append(budget_sentence(best[0], budget_rows))
    elif best:  # a budget-range sweep: each budget was sampled once or so
        sentences.append(range_sentence(task, budget_rows))
    grid_rows = [r for r in rows if r.grid]
    if grid_rows:
        sentences.append(grid_sentence(grid_rows))
    spent = sum(r.sweep_spent_usd for r in rows)
    sentences.append(
        f"Sweep `{sweep}` on {task}: {len(rows)} finished trials; deciding cost "
        f"**${spent:,.2f}** of device time. Scores are dev scores with their 90 % interval "
        "(bootstrap over dev examples, widened to every seed's score)."
    )
    return " ".join(sentences)


def write_artifacts(
    tracker: Tracker, parent_run_id: str, rows: Sequence[TrialRow], table: str
) -> list[str]:
    """The plots (score against share, Pareto, history, grid; the frontier once the trials
    can fit it) and the `sweep best` table, into the parent's `summary/` artifacts."""
    from sweep import frontier, plots

    with tempfile.TemporaryDirectory(prefix="doa-summary-") as tmp:
        out = Path(tmp)
        paths = plots.all_plots(rows, out)
        try:
            model = frontier.fit(rows, rows[0].task)
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
    text = paragraph(task, sweep, rows, best)
    tracker.describe(parent_run_id, text)
    if rows:  # a sweep with nothing to say leaves another sweep's answer in place
        tracker.describe_experiment(tracker.experiment_id(task), text)
        if artifacts:
            write_artifacts(tracker, parent_run_id, rows, format_best(best) if best else "")
    return text


class Refresher:
    """Refreshes one sweep's answer in a daemon thread, off the Tune driver's loop: requests
    made meanwhile are merged, descriptions at most every REFRESH_EVERY_S; `finish` asks for
    a last refresh with artifacts (run beside Ray's shutdown) and `join` waits for it."""

    def __init__(self, tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> None:
        import threading

        self.args = (task, sweep, parent_run_id)
        self.tracking_uri = tracking_uri
        self.cond = threading.Condition()
        self.wanted: bool | None = None  # a refresh is pending; with artifacts if True
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="doa-summary", daemon=True)
        self.thread.start()

    def request(self, artifacts: bool) -> None:
        with self.cond:
            self.wanted = bool(self.wanted) or artifacts
            self.cond.notify()

    def finish(self, artifacts: bool = True) -> None:
        """A last refresh (with artifacts unless told otherwise), then the thread ends."""
        with self.cond:
            if artifacts:
                self.wanted = True
            self.closing = True
            self.cond.notify()

    def join(self) -> None:
        self.finish(artifacts=False)  # a no-op after `finish`: its refresh still runs
        self.thread.join()

    def _next(self, last_s: float) -> tuple[bool | None, bool]:
        """Wait for a request (and until REFRESH_EVERY_S since the last refresh, unless
        closing); returns (what is wanted, whether the thread ends after it)."""
        with self.cond:
            while not self.closing and (
                self.wanted is None or time.monotonic() < last_s + REFRESH_EVERY_S
            ):
                wait = None if self.wanted is None else last_s + REFRESH_EVERY_S - time.monotonic()
                self.cond.wait(wait)
            wanted, self.wanted = self.wanted, None
            return wanted, self.closing

    def _loop(self) -> None:
        last_s = -REFRESH_EVERY_S
        closing = False
        while not closing:
            wanted, closing = self._next(last_s)
            if wanted is None:
                continue
            try:
                refresh(Tracker(self.tracking_uri), *self.args, artifacts=wanted)
            except Exception:
                logger.warning("could not update the sweep's description in MLflow", exc_info=True)
            last_s = time.monotonic()


_REFRESHERS: dict[str, Refresher] = {}  # parent run id -> its sweep's refresher


def _refresher(tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> Refresher:
    """The sweep's running refresher, or a new one after the last round's has finished
    (module level: Tune pickles its callbacks, which must not carry the threads)."""
    found = _REFRESHERS.get(parent_run_id)
    if found is None or found.closing:
        settle(parent_run_id)  # a previous round's last refresh comes first
        found = _REFRESHERS[parent_run_id] = Refresher(tracking_uri, task, sweep, parent_run_id)
    return found


def settle(parent_run_id: str) -> None:
    """Wait for the sweep's pending summary refresh (the round's last, with artifacts)."""
    refresher = _REFRESHERS.pop(parent_run_id, None)
    if refresher is not None:
        refresher.join()


def summary_callback(tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> Any:
    """A Ray Tune callback that refreshes the sweep's answer as trials finish (descriptions
    at most every REFRESH_EVERY_S, artifacts at most every ARTIFACTS_EVERY_S) and at the end
    of the round, in a thread of its own (`Refresher`; `settle` waits for it). A failure to
    write it is logged and never stops the sweep."""
    from ray.tune import Callback

    class Summary(Callback):
        def __init__(self) -> None:
            # Plain values only: Tune pickles its callbacks into the experiment checkpoint.
            self.last_artifacts_s = time.monotonic()

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **_: Any
        ) -> None:
            due = time.monotonic() - self.last_artifacts_s >= ARTIFACTS_EVERY_S
            if due:
                self.last_artifacts_s = time.monotonic()
            _refresher(tracking_uri, task, sweep, parent_run_id).request(artifacts=due)

        def on_experiment_end(self, trials: list[Any], **_: Any) -> None:
            _refresher(tracking_uri, task, sweep, parent_run_id).finish()

    return Summary()
