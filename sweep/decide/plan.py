"""The cheap path to "what split at budget B": pilot trials much smaller than the ones they
stand for, the learning curve of `sweep.decide.frontier` fitted to them, and more pilots where the
recommendation is least certain, until its interval is narrow or the spending cap is hit.

A pilot is a point of the paper's grid (L labels, all bought; U unlabelled examples), so it
runs through the same path as `sweep grid`. What makes pilots cheap:
- annotation-only pilots (U = 0) train no teacher: they trace the label curve up to the
  labels that B would buy;
- distillation pilots use small teachers (few labels) and small unlabelled pools, sized
  from the compute prices to fit the spending cap; a teacher serves every pilot with the
  same L and soft labels extend by prefix (the stage cache), so the first round reuses
  two teachers for four pilots;
- each later round spends on one pilot on the recommended share's labels, as much
  unlabelled data as the cap still affords, so that the curve's extrapolation in U shrinks;
- a warm start (`PlanSettings.shape`, a finished task's alpha and w) leaves fewer parameters
  to fit: one teacher, five pilots and 30 % of the cap in the first round.
Spending is read from the runner's rows (`sweep_spent_usd`, the sweep ledger): the runner
knows what the cache saved, the planner does not guess. Stand-in objectives spend nothing
real; their pilots are charged their allocation's compute (`compute_spent_usd`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from objectives.budget import CostModel
from sweep.decide import frontier
from sweep.tracking.results import TrialRow
from sweep.tracking.schema import trial_spent_usd

FIRST_ROUND_SHARE = 0.6  # of the spending cap: the rest refines where the interval is widest
SHAPED_FIRST_ROUND_SHARE = 0.3  # a warm start's shape needs fewer and smaller pilots
ANNOTATION_PILOTS = 4
SHAPED_ANNOTATION_PILOTS = 3  # with a warm start's shape: the label curve's level and slope
SMALLEST_LABELS = 16  # a teacher or student on fewer labels tells nothing about larger ones
SMALLEST_POOL = 16  # unlabelled examples: a smaller pool measures no distillation
PROBE_UNLABELLED = (32, 128)  # distillation pilots before any price is known


@dataclass(frozen=True)
class Pilot:
    """One grid point: the student sees `n_labels` labels (bought) and `n_unlabelled`
    distilled examples (0: annotation only)."""

    n_labels: int
    n_unlabelled: int


@dataclass(frozen=True)
class PlanSettings:
    task: str
    budget_usd: float
    seed_labels: int
    usd_per_label: float
    max_spend_usd: float
    cost: CostModel | None = None  # compute prices known in advance (the paper meter's)
    pool_cap: int | None = None  # most unlabelled examples the task has
    label_cap: int | None = None  # most labels a pilot can buy: the training split's rows
    fraction_width: float = 0.2  # stop when the share's 90 % interval is this narrow
    max_rounds: int = 5
    ceiling: bool = True  # cap distilled students by their teacher's curve
    effective_data: bool = True  # distilled examples may count as w labels each
    refine: bool = True  # rounds after the first
    shape: frontier.Shape | None = None  # a finished task's curve shape (warm start)

    def __post_init__(self) -> None:
        for name in ("budget_usd", "usd_per_label", "max_spend_usd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"`{name} > 0` must hold, but got {name}={value!r}.")
        if self.seed_labels < 0:
            raise ValueError(f"`seed_labels >= 0` must hold, but got {self.seed_labels!r}.")
        if self.pool_cap is not None and self.pool_cap < SMALLEST_POOL:
            raise ValueError(
                f"`max_unlabelled >= {SMALLEST_POOL}` must hold for a plan (a smaller pool "
                f"measures no distillation), but got max_unlabelled={self.pool_cap!r}."
            )
        if self.label_cap is not None and self.label_cap < self.smallest_labels:
            raise ValueError(
                f"the training split's {self.label_cap} rows are fewer than the "
                f"{self.smallest_labels} labels of the smallest pilot."
            )

    @property
    def smallest_labels(self) -> int:
        """The fewest labels a pilot's teacher or student trains on."""
        return max(self.seed_labels, SMALLEST_LABELS)

    @property
    def labels_at_zero(self) -> int:
        """What annotation only buys: the seed labels plus B's worth of new ones."""
        return self.seed_labels + math.floor(self.budget_usd / self.usd_per_label + 1e-9)

    def affordable_labels(self, n_labels: int) -> int:
        """`n_labels`, or as many as a pilot can have (beyond them the curve extrapolates)."""
        return n_labels if self.label_cap is None else min(n_labels, self.label_cap)


@dataclass(frozen=True)
class Round:
    pilots: tuple[Pilot, ...]
    spent_usd: float  # the plan's total after this round
    recommendation: frontier.Recommendation | None
    why_no_fit: str = ""


@dataclass(frozen=True)
class Plan:
    settings: PlanSettings
    rounds: tuple[Round, ...]
    reused: int  # finished trials of the task the plan started from
    stopped_because: str
    model: frontier.LearningCurve | None = field(default=None, compare=False)

    @property
    def spent_usd(self) -> float:
        return self.rounds[-1].spent_usd if self.rounds else 0.0

    @property
    def recommendation(self) -> frontier.Recommendation | None:
        return self.rounds[-1].recommendation if self.rounds else None


@dataclass(frozen=True)
class Ran:
    """What a round's pilots gave: the finished ones' rows, and what the failed ones spent
    (their time; they have no score to fit)."""

    rows: tuple[TrialRow, ...]
    failed_usd: float = 0.0


# run(pilots, allowance, left): each pilot may spend at most `allowance` on its teacher and
# distillation (its grid allowance: within the cap even where prices were guessed), and the
# runner starts no pilot that could take the round's real spending over `left` (what is left
# of the cap; a pilot's own student training counts there).
Runner = Callable[[Sequence[Pilot], float, float], Ran]


# --- designing pilots ----------------------------------------------------------------------


def _geometric(low: int, high: int, n: int) -> list[int]:
    return sorted({round(v) for v in np.geomspace(max(low, 1), max(high, low, 1), n)})


def first_round(s: PlanSettings, cost: CostModel | None) -> list[Pilot]:
    """Two small teachers (one when the cap cannot pay for two, or with a warm start's
    shape), two pool sizes each, and annotation pilots up to what B buys: enough trials for a
    first fit."""
    low = s.smallest_labels
    high = max(s.affordable_labels(s.labels_at_zero), low)
    teachers = _geometric(low, round(math.sqrt(low * high)), 1 if s.shape else 2)
    if cost is None:  # a probe: one teacher, two small pools, until prices are fitted
        teachers, sizes = teachers[:1], list(PROBE_UNLABELLED)
    else:
        share = (SHAPED_FIRST_ROUND_SHARE if s.shape else FIRST_ROUND_SHARE) * s.max_spend_usd
        while len(teachers) > 1 and sum(cost.teacher_usd(n) for n in teachers) > 0.7 * share:
            teachers.pop()
        teachers_usd = sum(cost.teacher_usd(n) for n in teachers)
        # Two sizes, U and U/4, per teacher: 1.25 U of distillation each.
        per_example = 1.25 * len(teachers) * cost.d_usd_per_1k_unlabelled / 1000
        largest = (share - teachers_usd) / per_example
        if largest < 4 * SMALLEST_POOL:  # the share buys no pool worth running: the cap does
            largest = (s.max_spend_usd - teachers_usd) / per_example
        sizes = [max(1, math.floor(largest / 4)), max(2, math.floor(largest))]
    if s.pool_cap is not None and sizes[-1] > s.pool_cap:  # two sizes still, under the cap
        sizes = sorted({max(SMALLEST_POOL, s.pool_cap // 4), s.pool_cap})
    distil = [Pilot(n, u) for n in teachers for u in sizes]
    # Annotation pilots train no teacher: they make up the trials a fit needs.
    at_least, trials = (
        (SHAPED_ANNOTATION_PILOTS, frontier.SHAPED_MIN_TRIALS)
        if s.shape
        else (ANNOTATION_PILOTS, frontier.MIN_TRIALS)
    )
    n_annotation = max(at_least, trials - len(distil))
    return [Pilot(n, 0) for n in _geometric(low, high, n_annotation)] + distil


def unaffordable(s: PlanSettings, cost: CostModel | None) -> str:
    """Why no distillation pilot fits the cap at known prices; empty when one does."""
    if cost is None:
        return ""
    least = cost.usd(s.smallest_labels, SMALLEST_POOL)
    if least <= s.max_spend_usd:
        return ""
    return (
        f"the cheapest distillation pilot (a teacher on {s.smallest_labels} labels, "
        f"{SMALLEST_POOL} examples distilled) costs ${least:.2f}, more than the cap of "
        f"${s.max_spend_usd:.2f}: no pilot can measure distillation; raise --max-spend"
    )


def _snap(n_labels: int, known: Sequence[int]) -> int:
    """A teacher already trained on about as many labels (within 30 %) serves again."""
    near = [k for k in known if abs(k - n_labels) <= 0.3 * n_labels]
    return min(near, key=lambda k: abs(k - n_labels)) if near else n_labels


def next_pilot(
    s: PlanSettings,
    rows: Sequence[TrialRow],
    rec: frontier.Recommendation | None,
    cost: CostModel,
    left_usd: float,
) -> Pilot | None:
    """The pilot that narrows the recommendation most for the money left, or None."""
    trained = sorted({r.n_labels_used for r in rows if r.n_unlabelled > 0})
    if rec is None:  # no fit yet: a larger pool at the smallest teacher is the cheapest news
        labels = trained[0] if trained else s.smallest_labels
        measured = max((r.n_unlabelled for r in rows if r.n_labels_used == labels), default=0)
        target = 2 * int(measured) or PROBE_UNLABELLED[-1]
    elif rec.n_unlabelled > 0:  # measure toward the recommended point
        labels, target = _snap(s.affordable_labels(rec.n_labels), trained), rec.n_unlabelled
    else:  # annotation only: is any distillation worth it at the interval's upper share?
        if rec.fraction_interval[1] <= 0:
            return None
        labels, target = _snap(_labels_at(s, rec.fraction_interval[1]), trained), 10**9
    if labels not in trained and trained and cost.teacher_usd(labels) >= left_usd:
        labels = min(trained, key=lambda k: abs(k - labels))  # the nearest teacher we have
    teacher = 0.0 if labels in trained else cost.teacher_usd(labels)
    per_1k = cost.d_usd_per_1k_unlabelled
    affordable = math.floor(max(0.0, left_usd - teacher) / per_1k * 1000)
    size = min(target, affordable, s.pool_cap or affordable)
    measured = max((r.n_unlabelled for r in rows if r.n_labels_used == labels), default=0)
    if size < max(16, 1.5 * measured):  # no new information for the money left
        return None
    return Pilot(labels, int(size))


def _labels_at(s: PlanSettings, fraction: float) -> int:
    bought = math.floor((1 - fraction) * s.budget_usd / s.usd_per_label + 1e-9)
    return s.affordable_labels(s.seed_labels + bought)


# --- the loop ------------------------------------------------------------------------------


def _curve(
    s: PlanSettings, rows: Sequence[TrialRow], shape: frontier.Shape | None
) -> frontier.LearningCurve:
    return frontier.fit(
        rows,
        s.task,
        seed_labels=s.seed_labels,
        pool_cap=s.pool_cap,
        ceiling=s.ceiling,
        effective_data=s.effective_data,
        shape=shape,
    )


def _fit(
    s: PlanSettings, rows: Sequence[TrialRow]
) -> tuple[frontier.LearningCurve | None, frontier.Recommendation | None, str]:
    """The curve and its recommendation. A warm start's shape is a prior: once the task's
    own trials carry a curve of their own, the shape stays only while it predicts the
    left-out trials at least as well."""
    try:
        model = _curve(s, rows, s.shape)
    except frontier.NotEnoughTrials as exc:
        return None, None, str(exc)
    if s.shape is not None:
        try:
            own = _curve(s, rows, None)
            model = own if own.held_out.mae < model.held_out.mae else model
        except frontier.NotEnoughTrials:
            pass
    return model, frontier.recommend(model, s.budget_usd), ""


def _narrow(s: PlanSettings, rec: frontier.Recommendation) -> bool:
    f_low, f_high = rec.fraction_interval
    return f_high - f_low <= s.fraction_width


def _prices(s: PlanSettings, model: frontier.LearningCurve | None) -> CostModel | None:
    """Known prices first: pilots at one or two label counts cannot separate a teacher's
    fixed cost from its cost per label."""
    if s.cost is not None or model is None:
        return s.cost
    c = model.costs
    return CostModel(c.teacher_usd, c.usd_per_labelled * 1000, c.usd_per_unlabelled * 1000)


def _allowance(pilots: Sequence[Pilot], left_usd: float, cost: CostModel | None) -> float:
    """Each distillation pilot's compute allowance: an even share of what is left, but at
    known prices no less than each teacher's smallest pilot needs with its teacher (less
    would run that pilot without distillation). The runner's cap bounds the round."""
    distilling = [p for p in pilots if p.n_unlabelled]
    even = left_usd / (len(distilling) or 1)
    if cost is None or not distilling:
        return even
    # Each teacher's smallest pilot with its teacher; the largest of those is what is needed.
    need = max(
        cost.usd(n, min(p.n_unlabelled for p in distilling if p.n_labels == n))
        for n in {p.n_labels for p in distilling}
    )
    return min(left_usd, max(even, need + 1e-6))


def plan_spent_usd(row: TrialRow) -> float:
    """The sweep ledger; a stand-in objective spends nothing real, so its pilots are charged
    what the allocation's compute would cost (as a sweep's `--max-spend` counts them)."""
    return trial_spent_usd(
        {"sweep_spent_usd": row.sweep_spent_usd, "compute_spent_usd": row.compute_spent_usd}
    )


def plan(run: Runner, s: PlanSettings, known: Sequence[TrialRow] = ()) -> Plan:
    """Run pilots until the recommendation at `s.budget_usd` is narrow, the cap is spent or
    no pilot adds information; each round's recommendation is kept (the benchmark reads
    when it first came within a point of the best)."""
    rows = list(known)
    rounds: list[Round] = []
    model, rec, why = _fit(s, rows) if rows else (None, None, "no trials yet")
    spent = 0.0
    stopped = ""
    if rec is None:
        stopped = unaffordable(s, s.cost)
        pilots = [] if stopped else first_round(s, s.cost)
    elif _narrow(s, rec):
        pilots, stopped = [], "the stored trials already give a narrow interval"
        rounds.append(Round((), spent, rec))
    else:
        prices = _prices(s, model)
        pilot = next_pilot(s, rows, rec, prices, s.max_spend_usd) if prices else None
        pilots = [pilot] if pilot else []
        if not pilots:
            rounds.append(Round((), spent, rec))
    while pilots:
        left = s.max_spend_usd - spent
        ran = run(pilots, _allowance(pilots, left, _prices(s, model)), left)
        new = list(ran.rows)
        spent += sum(plan_spent_usd(r) for r in new) + ran.failed_usd
        rows += new
        model, rec, why = _fit(s, rows)
        rounds.append(Round(tuple(pilots), spent, rec, why))
        if rec is not None and _narrow(s, rec):
            stopped = "the recommendation's interval is narrow"
            break
        cut = (
            f"round {len(rounds)} finished {len(new)} of its {len(pilots)} pilots (the "
            "spending cap stopped it, or pilots failed)"
            if len(new) < len(pilots)
            else ""
        )
        prices = _prices(s, model)
        if not s.refine or len(rounds) >= s.max_rounds or prices is None:
            stopped = "refinement off" if not s.refine else cut or "the last round was run"
            break
        pilot = next_pilot(s, rows, rec, prices, s.max_spend_usd - spent)
        if pilot is None:
            stopped = "the money left buys no informative pilot"
            break
        pilots = [pilot]
    return Plan(s, tuple(rounds), len(known), stopped or "nothing to run", model)


def _interval_text(low: float, high: float, digits: int) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def format_plan(p: Plan) -> str:
    """What `sweep plan` prints: each round, then the answer and what deciding cost."""
    s = p.settings
    lines = [f"plan for {s.task} at B=${s.budget_usd:g} with {s.seed_labels} seed labels"]
    if p.reused:
        lines.append(f"  started from {p.reused} finished trials of the task in the store")
    if s.shape is not None:
        lines.append(
            f"  warm start: the curve's shape from {s.shape.task}'s {s.shape.n_trials} trials "
            f"(alpha {s.shape.alpha:.3g}, a distilled example worth {s.shape.w:.3g} labels)"
            + ("; alpha is at the end of its range: a doubtful prior" if s.shape.at_edge else "")
        )
        model = p.model
        if model is not None and (model.curve.alpha, model.curve.w) != (s.shape.alpha, s.shape.w):
            lines.append(
                f"  the task's own {model.n_trials} trials predict better without that shape:"
                " it was dropped"
            )
    for n, r in enumerate((r for r in p.rounds if r.pilots), start=1):
        points = ", ".join(f"L={x.n_labels} U={x.n_unlabelled}" for x in r.pilots)
        lines.append(f"  round {n}: {len(r.pilots)} pilots ({points}); spent ${r.spent_usd:.2f}")
    rec = p.recommendation
    if rec is None:
        why = p.rounds[-1].why_no_fit if p.rounds else p.stopped_because
        lines.append(f"no recommendation: {why}")
        if p.rounds:
            lines.append(f"spent deciding: ${p.spent_usd:.2f}; stopped: {p.stopped_because}")
        return "\n".join(lines)
    lines += [
        f"recommended: spend {100 * rec.compute_fraction:.1f} % of ${s.budget_usd:g} on compute "
        f"(90 % interval {_interval_text(*rec.fraction_interval, 2)} of the budget): "
        f"{rec.n_new_labels} new labels, {rec.n_unlabelled} unlabelled examples distilled",
        f"predicted score {rec.score:.4f} {_interval_text(*rec.score_interval, 4)}"
        + ("" if rec.inside else f"; extrapolated ({rec.why_outside})"),
        *(
            []
            if rec.fraction_interval[0] <= rec.compute_fraction <= rec.fraction_interval[1]
            else ["unstable: the fit's best share lies outside its own bootstrap interval"]
        ),
        f"spent deciding: ${p.spent_usd:.2f} of compute ({100 * p.spent_usd / s.budget_usd:.1f} % "
        f"of the budget; cap ${s.max_spend_usd:.2f}); stopped: {p.stopped_because}",
    ]
    return "\n".join(lines)
