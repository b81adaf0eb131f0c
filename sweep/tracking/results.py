"""Queries over a finished store: the best allocation per task and budget. Reads MLflow
only; starts no Ray."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from objectives.baselines import learned_nothing as models_that_learned_nothing
from objectives.tasks import CLASSIFICATION_METRICS
from objectives.trial_config import TrialResult
from sweep.tables import format_table
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.schema import (
    TAG_BUDGET,
    TAG_MODE,
    TAG_SEED_LABELS,
    TAG_SWEEP,
    TrialFigures,
    combine_seeds,
    read_run,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrialRow(TrialFigures):
    """One finished trial as read back from MLflow: where it ran, then its figures (the
    result's fields as `TrialFigures` declares them)."""

    run_id: str
    sweep: str
    task: str
    budget_usd: float
    n_seed_labels: int
    trial_number: int | None
    start_time_ms: int
    grid: bool = False  # a point of the labelled x unlabelled grid, not a budget's split

    @property
    def compute_share(self) -> float:
        """The share of the dollars it spent that went to compute (0 when it spent none)."""
        return self.compute_spent_usd / self.practitioner_usd if self.practitioner_usd else 0.0


_ROW_FIELDS = frozenset(f.name for f in fields(TrialRow))


@dataclass(frozen=True)
class BestAllocation:
    task: str
    budget_usd: float
    n_seed_labels: int
    compute_fraction: float
    strategy: str
    n_new_labels: int
    n_unlabelled: float
    device_hours: float
    practitioner_usd: float
    score: float
    score_std: float
    n_seeds: int
    n_trials: int
    run_id: str
    sweep: str
    score_low: float | None = None
    score_high: float | None = None
    # Against annotate only (f = 0) at the same budget, same sweep where it has one:
    # the score difference, and whether the two intervals do not overlap.
    vs_annotate_only: float | None = None
    beyond_noise: bool | None = None
    # Against the trivial predictor on the same dev rows (None: not measured), whether no
    # trial of the group beat it (then no split is recommended), and that in words.
    trivial_score: float | None = None
    margin: float | None = None
    margin_low: float | None = None
    margin_high: float | None = None
    nothing_learned: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def versus_annotate_only(self) -> str:
        """E.g. "+0.031 (beyond the interval)", "+0.004 (within noise)"."""
        if self.nothing_learned:
            return "nothing learned"
        if self.compute_fraction == 0.0:
            return "annotate-only is best"
        if self.vs_annotate_only is None:
            return "no annotate-only trial"
        if self.beyond_noise is None:
            return f"{self.vs_annotate_only:+.3f} (no interval)"
        verdict = "beyond the interval" if self.beyond_noise else "within noise"
        return f"{self.vs_annotate_only:+.3f} ({verdict})"


_BEST_FIELDS = frozenset(f.name for f in fields(BestAllocation))


def learned_nothing(row: TrialRow) -> bool:
    """The trial's student did not beat its trivial baseline beyond noise, or gave every dev
    row one prediction (in any seed); False where no baseline was measured."""
    return "student" in models_that_learned_nothing(row.degenerate)


def learned_rows(rows: Iterable[TrialRow]) -> list[TrialRow]:
    """The trials whose student learned something: the posterior's evidence (a constant
    predictor's score is the floor the data set gives, not a point of the landscape)."""
    return [r for r in rows if not learned_nothing(r)]


def one_class_note(rows: Sequence[TrialRow]) -> str:
    """E.g. "4 of 6 trials predict one class (100 % of dev rows are 'paraphrase')"."""
    constant = [r for r in rows if (r.top_prediction_share or 0.0) >= 1.0]
    if not constant:
        return ""
    top, _ = Counter(r.top_prediction for r in constant).most_common(1)[0]
    kind = "class" if constant[0].metric in CLASSIFICATION_METRICS else "output"
    return (
        f"{len(constant)} of {len(rows)} trials predict one {kind} (100 % of dev rows are {top!r})"
    )


def nothing_learned_note(task: str, rows: Sequence[TrialRow]) -> str:
    """Why no split is recommended when no trial beat its trivial baseline."""
    known = [r for r in rows if r.trivial_score is not None]
    trivial = (
        f" ({known[0].trivial_predictor}: {known[0].trivial_score:.4f})"
        if known and known[0].trivial_score is not None
        else ""
    )
    constant = one_class_note(rows)
    return (
        "nothing learned at this budget with this recipe: no trial beats its trivial "
        f"baseline beyond noise{trivial}"
        + (f"; {constant}" if constant else "")
        + f"; see `sweep doctor --task {task} --learn`"
    )


def _group_note(task: str, rows: Sequence[TrialRow], learned: Sequence[TrialRow]) -> str:
    if not learned:
        return nothing_learned_note(task, rows)
    if len(learned) == len(rows):
        return ""
    constant = one_class_note(rows)
    return (
        f"{len(rows) - len(learned)} of {len(rows)} trials learned nothing (they do not beat "
        "their trivial baseline beyond noise; left out of the ranking)"
        + (f"; {constant}" if constant else "")
    )


def rank_key(row: TrialRow) -> tuple[float, float]:
    """The ranking rule of every "best": the higher score, then the cheaper allocation."""
    return (row.score, -row.practitioner_usd)


def best_trial(rows: Iterable[TrialRow]) -> TrialRow | None:
    """The best of `rows` by `rank_key`; None when there are none."""
    return max(rows, key=rank_key, default=None)


def annotate_only_baseline(
    best: TrialRow | BestAllocation, rows: Sequence[TrialRow]
) -> TrialRow | None:
    """The annotate-only trial (f = 0) a best split is compared with: the latest of the
    best's own sweep, else the latest of any sweep in `rows`."""
    annotate = [r for r in rows if r.compute_fraction == 0.0]
    same_sweep = [r for r in annotate if r.sweep == best.sweep]
    return max(same_sweep or annotate, key=lambda r: r.start_time_ms, default=None)


def _versus_annotate_only(
    best: TrialRow, rows: Sequence[TrialRow]
) -> tuple[float | None, bool | None]:
    """(best - annotate-only score, whether the best's interval lies wholly above the
    annotate-only one's). Non-overlap is conservative: a difference it calls real is one."""
    base = annotate_only_baseline(best, rows)
    if base is None:
        return None, None
    if best.run_id == base.run_id:
        return 0.0, False
    if best.score_low is None or base.score_high is None:
        return best.score - base.score, None
    return best.score - base.score, best.score_low > base.score_high


def label_price(row: TrialRow) -> float | None:
    """What the trial paid per label; None when it bought none."""
    return row.annotation_usd / row.n_new_labels if row.n_new_labels > 0 else None


def device_hour_price(row: TrialRow) -> float | None:
    """What the trial's compute cost per device-hour; None when it distilled nothing."""
    if row.n_unlabelled > 0 and row.compute_spent_usd > 0 and row.device_hours > 0:
        return row.compute_spent_usd / row.device_hours
    return None


def priced_like(
    rows: Iterable[TrialRow], usd_per_label: float | None, usd_per_device_hour: float | None
) -> tuple[list[TrialRow], list[TrialRow]]:
    """(trials priced like this, or silent about a price; the others). A learning curve's
    costs are fitted from one pricing; None: any price."""

    def same(price: float | None, wanted: float | None) -> bool:
        return price is None or wanted is None or abs(price - wanted) <= 1e-3 * wanted

    kept: list[TrialRow] = []
    other: list[TrialRow] = []
    for r in rows:
        alike = same(label_price(r), usd_per_label)
        (kept if alike and same(device_hour_price(r), usd_per_device_hour) else other).append(r)
    return kept, other


def how_priced(tracker: Tracker, task: str, sweeps: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each sweep's (objective, compute meter), from its parent run's config: trials of one
    curve share them (a stand-in's or another meter's dollars are not a real trial's)."""
    out = {}
    for sweep in set(sweeps):
        run_id = tracker.find_sweep_run(task, sweep)
        params = tracker.client.get_run(run_id).data.params if run_id else {}
        # Unset: the defaults (a stored config leaves out what is None).
        out[sweep] = (params.get("objective", "real"), params.get("trial.meter", "estimated"))
    return out


def _row(run: Any) -> TrialRow:
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    number = t.get("optuna.trial_number")
    result = {k: v for k, v in read_run(m, t).items() if k in _ROW_FIELDS and v is not None}
    # The sampled share is an Optuna parameter; a grid point's share is only a metric.
    result["compute_fraction"] = float(
        p.get("compute_fraction", result.get("compute_fraction", 0.0))
    )
    return TrialRow(
        run_id=run.info.run_id,
        sweep=t.get(TAG_SWEEP, ""),
        task=t.get("doa.task", ""),
        budget_usd=float(t.get(TAG_BUDGET, "nan")),
        n_seed_labels=int(t.get(TAG_SEED_LABELS, 0)),
        trial_number=int(number) if number not in (None, "") else None,
        start_time_ms=int(run.info.start_time or 0),
        grid=t.get(TAG_MODE) == "grid",
        **result,
    )


def row_from_result(result: TrialResult, run_id: str, sweep_spent_usd: float) -> TrialRow:
    """A grid point's row straight from an in-process result (no store): what a pilot run
    outside Ray looks like to the frontier (`sweep.decide.plan`, `bench/decision_cost.py`),
    through the same schema a sweep logs it with."""
    figures = {k: v for k, v in combine_seeds([result]).items() if k in _ROW_FIELDS}
    return TrialRow(
        **{**figures, "sweep_spent_usd": sweep_spent_usd},
        run_id=run_id,
        sweep="in-process",
        task=result.task,
        budget_usd=result.budget_usd,
        n_seed_labels=result.n_seed_labels,
        trial_number=None,
        start_time_ms=0,
        grid=True,
    )


_WARNED_UNREADABLE: set[str] = set()


def finished_trials(
    tracker: Tracker, task: str | None = None, sweep: str | None = None
) -> list[TrialRow]:
    """Finished trials with a score; failed, killed and running ones are left out. A sweep
    whose trials cannot be read (written by a version that took bad values) is left out with
    one warning, so that it hides none of the others."""
    rows, unreadable = [], dict[str, str]()
    for run in tracker.trial_runs(task=task, sweep=sweep):
        if "score" not in run.data.metrics:
            continue
        try:
            rows.append(_row(run))
        except (TypeError, ValueError) as exc:
            unreadable.setdefault(run.data.tags.get(TAG_SWEEP, "?"), str(exc))
    for name, why in unreadable.items():
        if name not in _WARNED_UNREADABLE:  # one line per sweep, however often it is read
            _WARNED_UNREADABLE.add(name)
            logger.warning("left out sweep %r: its trials cannot be read (%s)", name, why)
    return sorted(rows, key=lambda r: (r.task, r.budget_usd, r.start_time_ms))


def best_allocations(
    tracker: Tracker | str,
    task: str | None = None,
    budget_usd: float | None = None,
    sweeps: Sequence[str] | None = None,
) -> list[BestAllocation]:
    """Per (task, budget, seed labels): the best finished trial and how many stand behind it.
    Grid points are left out: each is its own allocation, not a choice within a budget.
    `tracker`: a Tracker, or the MLflow tracking URI of one."""
    if isinstance(tracker, str):
        tracker = Tracker(tracker)
    return best_of(finished_trials(tracker, task), budget_usd, sweeps)


def best_of(
    trials: Iterable[TrialRow],
    budget_usd: float | None = None,
    sweeps: Sequence[str] | None = None,
) -> list[BestAllocation]:
    """`best_allocations` over trials already read (one read of the store serves both)."""
    groups: dict[tuple[str, float, int], list[TrialRow]] = defaultdict(list)
    for row in trials:
        if row.grid or (sweeps is not None and row.sweep not in sweeps):
            continue
        if budget_usd is None or abs(row.budget_usd - budget_usd) < 1e-9:
            groups[(row.task, row.budget_usd, row.n_seed_labels)].append(row)
    out = []
    for (task, _, _), rows in sorted(groups.items()):  # the key is the best trial's fields
        # A trial that learned nothing is never the answer: ranked only when none learned.
        learned = learned_rows(rows)
        best = max(learned or rows, key=rank_key)
        versus, beyond = _versus_annotate_only(best, rows)
        if not learned and beyond is not None:
            beyond = False  # a degenerate trial's advantage is never beyond noise
        shared = {k: getattr(best, k) for k in _BEST_FIELDS & _ROW_FIELDS}
        out.append(
            BestAllocation(
                **shared,
                n_trials=len(rows),
                vs_annotate_only=versus,
                beyond_noise=beyond,
                nothing_learned=not learned,
                note=_group_note(task, rows, learned),
            )
        )
    return out


def pareto_set(rows: Iterable[TrialRow]) -> list[TrialRow]:
    """Trials that no trial beats on both score and dollars spent, cheapest first."""
    front: list[TrialRow] = []
    for row in sorted(rows, key=lambda r: (r.practitioner_usd, -r.score)):
        if not front or row.score > front[-1].score:
            front.append(row)
    return front


def format_trials(rows: Sequence[TrialRow]) -> str:
    header = ("task", "sweep", "budget", "f", "labels", "unlabelled", "spent", "score", "run id")
    table = [
        (
            r.task,
            r.sweep,
            f"${r.budget_usd:g}",
            f"{r.compute_fraction:.3f}",
            str(r.n_labels_used),
            f"{r.n_unlabelled:.0f}",
            f"${r.practitioner_usd:.2f}",
            f"{r.score:.4f}",
            r.run_id,
        )
        for r in rows
    ]
    return format_table(header, table)


def format_best(rows: list[BestAllocation]) -> str:
    header = (
        "task",
        "budget",
        "seed",
        "best f",
        "strategy",
        "labels bought",
        "unlabelled",
        "device-h",
        "score (± over seeds)",
        "90 % interval",
        "vs annotate-only",
        "vs trivial [90 %]",
        "trials",
        "run id",
    )
    table = [
        (
            r.task,
            f"${r.budget_usd:g}",
            str(r.n_seed_labels),
            "none" if r.nothing_learned else f"{r.compute_fraction:.3f}",
            "nothing learned" if r.nothing_learned else r.strategy,
            str(r.n_new_labels),
            f"{r.n_unlabelled:.0f}",
            f"{r.device_hours:.4f}",
            f"{r.score:.4f} ± {r.score_std:.4f} (n={r.n_seeds})",
            "-"
            if r.score_low is None or r.score_high is None
            else f"[{r.score_low:.4f}, {r.score_high:.4f}]",
            r.versus_annotate_only,
            _margin(r),
            str(r.n_trials),
            r.run_id,
        )
        for r in rows
    ]
    notes = [f"{r.task} ${r.budget_usd:g}: {r.note}" for r in rows if r.note]
    return "\n".join([format_table(header, table), *notes])


def _margin(r: BestAllocation) -> str:
    """The best trial's margin over its trivial baseline, e.g. "+0.052 [+0.010, +0.094]"."""
    if r.margin is None or r.margin_low is None or r.margin_high is None:
        return "-"
    return f"{r.margin:+.3f} [{r.margin_low:+.3f}, {r.margin_high:+.3f}]"


def format_grid(rows: list[Any]) -> str:
    front = {r.run_id for r in pareto_set(rows)}
    header = ("labels", "unlabelled", "total $", "compute $", "compute share", "score", "front")
    table = [
        (
            str(r.n_labels_used),
            f"{r.n_unlabelled:.0f}",
            f"{r.practitioner_usd:.2f}",
            f"{r.compute_spent_usd:.2f}",
            f"{r.compute_share:.0%}" if r.practitioner_usd else "-",
            f"{r.score:.4f}",
            "*" if r.run_id in front else "",
        )
        for r in sorted(rows, key=lambda r: (r.n_labels_used, r.n_unlabelled))
    ]
    return format_table(header, table)
