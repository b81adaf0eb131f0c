"""`sweep plan`: "what share of B should buy compute?" answered from what is known, then
improved by pilots only where a pilot is worth its price.

1. The prior's answer, free: every share of B becomes the task's own (L labels, U distilled
   examples) through its known prices, and is scored by every hypothesis that the measured
   landscapes give (`sweep.decide.prior`); the answer is the share with the best expected
   score, with a predictive interval.
2. Pilots by value of information: each candidate pilot (annotation only at a few label
   counts; a small teacher distilling a small pool) is scored by the expected drop in regret
   its result would bring (one step ahead, over the hypotheses), in points of score, and by
   its price in the same points (what its dollars would have bought as part of B). The best
   pilot runs only if it gains more than it costs; the plan may stop with zero pilots.
3. The decision's price, in the meter that prices B: each pilot's compute as its row records
   it, and labels beyond the seed labels unless the answer buys at least as many (then they
   are part of the answer). The sweep ledger's real dollars are reported beside it.

A pilot is a point of the paper's grid (L labels, all bought; U unlabelled examples), so it
runs through the same path as `sweep grid`; a teacher serves every later pilot with the same
L (the stage cache), so the decision pays each teacher once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from objectives.budget import CostModel
from sweep.decide import prior
from sweep.tracking.results import TrialRow, learned_rows, nothing_learned_note

SMALLEST_POOL = 16  # unlabelled examples: a smaller pool measures no distillation
ANNOTATION_CANDIDATES = 6  # label counts an annotation pilot may take, log-spaced
TEACHER_CANDIDATES = 3  # label counts a pilot's teacher may take
POOL_CANDIDATES = 6  # pool sizes a distillation pilot may take


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
    cost: CostModel  # compute prices in the meter that prices B
    pool_cap: int | None = None  # most unlabelled examples the task has
    label_cap: int | None = None  # most labels a pilot can buy: the training split's rows
    noise_sd: float = 0.02  # what one run's score varies by, the hypotheses' misfit included
    max_pilots: int = 12
    landscapes: tuple[prior.Known, ...] | None = None  # None: the shipped ones
    pilots: bool = True  # False: the prior's answer only (`--pilots 0`)
    first_pairs: bool = False  # also weigh two first pilots together (see `_designs`)

    def __post_init__(self) -> None:
        for name in ("budget_usd", "usd_per_label", "max_spend_usd", "noise_sd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"`{name} > 0` must hold, but got {name}={value!r}.")
        if self.seed_labels < 0:
            raise ValueError(f"`seed_labels >= 0` must hold, but got {self.seed_labels!r}.")
        if self.max_pilots < 0:
            raise ValueError(
                f"`max_pilots >= 0` must hold, but got max_pilots={self.max_pilots!r}."
            )
        if self.pool_cap is not None and self.pool_cap < SMALLEST_POOL:
            raise ValueError(
                f"`max_unlabelled >= {SMALLEST_POOL}` must hold for a plan (a smaller pool "
                f"measures no distillation), but got max_unlabelled={self.pool_cap!r}."
            )

    @property
    def setting(self) -> prior.Setting:
        return prior.Setting(
            self.budget_usd, self.seed_labels, self.usd_per_label, self.cost, self.pool_cap
        )

    @property
    def known(self) -> tuple[prior.Known, ...]:
        return self.landscapes if self.landscapes is not None else prior.shipped()


@dataclass(frozen=True)
class Step:
    """One pilot: why it ran, what it scored and what the plan had spent after it."""

    pilot: Pilot
    gain_points: float  # expected drop in regret, points of score
    price_usd: float  # its expected price in B's meter
    worth_usd: float  # what the gain is worth at the answer's dollar value
    row: TrialRow | None  # None: it failed or the cap stopped it
    spent_usd: float


@dataclass(frozen=True)
class Plan:
    settings: PlanSettings
    prior_answer: prior.Answer
    steps: tuple[Step, ...]
    answer: prior.Answer
    reused: int  # finished trials of the task the plan started from
    stopped_because: str
    compute_usd: float  # pilots' compute in B's meter
    label_usd: float  # pilots' labels beyond the seed that the answer does not buy
    ledger_usd: float  # the sweep ledger: what the pilots really spent
    nothing_learned: str = ""  # why no share is recommended: no trial beat its trivial baseline
    weights: tuple[tuple[str, float], ...] = field(default=(), compare=False)

    @property
    def spent_usd(self) -> float:
        """The decision's price in B's meter."""
        return self.compute_usd + self.label_usd


@dataclass(frozen=True)
class Ran:
    """What a round's pilots gave: the finished ones' rows, and what the failed ones spent
    (their time; they have no score to fit)."""

    rows: tuple[TrialRow, ...]
    failed_usd: float = 0.0


# run(pilots, allowance, left): each pilot may spend at most `allowance` on its teacher and
# distillation (B's meter), and the runner starts no pilot that could take the real spending
# (the sweep ledger) over `left`: the cap bounds real dollars too.
Runner = Callable[[Sequence[Pilot], float, float], Ran]


def label_charge_usd(s: PlanSettings, rows: Sequence[TrialRow], answer_labels: int) -> float:
    """Labels the pilots bought beyond the seed labels and beyond what the answer buys: a
    label the answer buys anyway is part of the answer, not of the decision."""
    most = max((r.n_labels_used for r in rows), default=0)
    return max(0, most - max(s.seed_labels, answer_labels)) * s.usd_per_label


def candidates(s: PlanSettings, ans: prior.Answer, trained: set[int]) -> list[Pilot]:
    """Annotation pilots up to what annotation only buys; small teachers (from the seed
    labels up to the answer's labels) distilling pools up to what the cap affords."""
    at_zero = s.seed_labels + math.floor(s.budget_usd / s.usd_per_label + 1e-9)
    top = min(at_zero, s.label_cap or at_zero)
    low = max(s.seed_labels, 1)
    pilots = [Pilot(n, 0) for n in prior.log_spaced(low, top, ANNOTATION_CANDIDATES)]
    teachers = prior.log_spaced(low, min(top, max(low, ans.n_labelled)), TEACHER_CANDIDATES)
    for n in teachers:
        teacher = 0.0 if n in trained else s.cost.teacher_usd(n)
        most = s.cost.unlabelled_for(s.max_spend_usd - teacher)
        most = min(most, s.pool_cap or most)
        if most >= SMALLEST_POOL:
            sizes = prior.log_spaced(SMALLEST_POOL, most, POOL_CANDIDATES)
            pilots += [Pilot(n, u) for u in sizes if u >= SMALLEST_POOL]
    return pilots


def price_usd(s: PlanSettings, p: Pilot, trained: set[int], bought: int) -> float:
    """A pilot's price in B's meter at worst: its teacher (unless one on the same labels is
    cached) and distillation, and every label beyond the seed labels and those bought
    already (the answer may buy them later, and then they are refunded to the decision,
    but the cap must hold whatever the answer becomes)."""
    compute = 0.0
    if p.n_unlabelled:
        compute = s.cost.distillation_usd(p.n_unlabelled)
        compute += 0.0 if p.n_labels in trained else s.cost.teacher_usd(p.n_labels)
    return compute + max(0, p.n_labels - max(s.seed_labels, bought)) * s.usd_per_label


def _observations(known: Sequence[prior.Known], rows: Sequence[TrialRow]) -> prior.Array:
    labelled = np.array([float(r.n_labels_used) for r in rows])
    unlabelled = np.array([float(r.n_unlabelled) for r in rows])
    return prior.raw_scores(known, labelled, unlabelled)


def _state(
    s: PlanSettings,
    rows: Sequence[TrialRow],
    raw_shares: prior.Array,
    buys: tuple[prior.Array, prior.Array],
) -> tuple[prior.Posterior, prior.Answer]:
    """The posterior given the trials that learned something (a constant predictor's score is
    the data set's floor, not a point of the task's landscape), and its answer."""
    rows = learned_rows(rows)
    observed = np.array([r.score for r in rows])
    post = prior.posterior(_observations(s.known, rows), observed, s.noise_sd)
    return post, prior.answer(post, raw_shares, *buys)


Design = tuple[tuple[Pilot, float], ...]  # pilots run together, each with its price


def _designs(
    s: PlanSettings,
    rows: Sequence[TrialRow],
    mine: Sequence[TrialRow],
    ans: prior.Answer,
    committed_usd: float,
    room: int,
) -> list[Design]:
    """Affordable designs: one new pilot each; with `first_pairs`, while fewer than two
    observations exist, also the cheapest pilot paired with each other one. (A lone first
    score fixes only the level, which the prior leaves free, so one step ahead no lone first
    pilot shows any worth and a plan from scratch answers from the prior. Pairs can show
    worth, but on the paper's grids they misled the answer: bench/README.md, note 8.)
    `mine`: this plan's own pilots, whose teachers the cache holds and whose labels it paid."""
    trained = {r.n_labels_used for r in mine if r.n_unlabelled}
    bought = max((r.n_labels_used for r in mine), default=0)
    seen = {(r.n_labels_used, int(r.n_unlabelled)) for r in rows}
    left = s.max_spend_usd - committed_usd
    singles = [
        (p, price_usd(s, p, trained, bought))
        for p in candidates(s, ans, trained)
        if (p.n_labels, p.n_unlabelled) not in seen
    ]
    designs: list[Design] = [((p, usd),) for p, usd in singles if usd <= left]
    if s.first_pairs and len(learned_rows(rows)) < 2 and singles and room >= 2:
        anchor = min(singles, key=lambda x: x[1])
        designs += [(anchor, x) for x in singles if x != anchor and anchor[1] + x[1] <= left]
    return designs


def _best_design(
    s: PlanSettings,
    rows: Sequence[TrialRow],
    mine: Sequence[TrialRow],
    state: tuple[prior.Posterior, prior.Answer, prior.Array, prior.Array],
    committed_usd: float,
    room: int,
) -> tuple[Design, float, float] | str:
    """(design, its expected gain in points, points per dollar) of the design with the best
    net value, or why none runs. `state`: the posterior, its answer and the raw scores of
    every hypothesis at every share of B and of a quarter less (what a dollar is worth)."""
    post, ans, raw_shares, raw_less = state
    designs = _designs(s, rows, mine, ans, committed_usd, room)
    if not designs:
        return f"the ${s.max_spend_usd - committed_usd:.2f} left of the cap buys no new pilot"
    raws = [
        prior.raw_scores(
            s.known,
            np.array([float(p.n_labels) for p, _ in design]),
            np.array([float(p.n_unlabelled) for p, _ in design]),
        )
        for design in designs
    ]
    learned = learned_rows(rows)
    observations = (_observations(s.known, learned), np.array([r.score for r in learned]))
    gains = prior.expected_gain(post, observations, raws, raw_shares)
    rate = prior.points_per_usd(post, raw_shares, raw_less, s.budget_usd)
    prices = np.array([sum(usd for _, usd in design) for design in designs])
    net = gains - rate * prices
    pick = int(np.argmax(net))
    if net[pick] <= 0 or gains[pick] <= 1e-5:
        where = " and ".join(f"L={p.n_labels} U={p.n_unlabelled}" for p, _ in designs[pick])
        worth = f"${gains[pick] / rate:.2f}" if rate > 0 else "nothing to a budget this flat"
        return (
            f"no pilot is worth its price (the best, {where}, would cut the expected regret "
            f"by {100 * gains[pick]:.2f} points, worth {worth}, for ${prices[pick]:.2f})"
        )
    return designs[pick], float(gains[pick]), rate


def _charged_usd(s: PlanSettings, ran: Ran, trained: set[int]) -> float:
    """What a pilot costs the decision in B's meter: its row's compute, less a teacher an
    earlier pilot of the plan trained (B's meter charges a trial its teacher whether the
    stage cache served it or not; the decision pays for it once); a failed pilot, what it
    really spent (it has no row)."""
    refund = [
        s.cost.teacher_usd(r.n_labels_used) if r.n_unlabelled and r.n_labels_used in trained else 0
        for r in ran.rows
    ]
    rows = sum(max(0.0, r.compute_spent_usd - x) for r, x in zip(ran.rows, refund, strict=True))
    return rows + ran.failed_usd


def plan(run: Runner, s: PlanSettings, known: Sequence[TrialRow] = ()) -> Plan:
    """The prior's answer, then pilots while one is worth its price (at most `max_pilots`,
    within `max_spend_usd` at their worst), then the answer from every observation."""
    rows = list(known)
    buys = s.setting.buys()
    raw_shares = prior.raw_scores(s.known, *buys)
    raw_less = prior.raw_scores(s.known, *s.setting.buys(prior.SMALLER_BUDGET * s.budget_usd))
    first = prior.answer(
        prior.posterior(_observations(s.known, []), np.array([]), s.noise_sd), raw_shares, *buys
    )
    post, ans = _state(s, rows, raw_shares, buys)
    steps: list[Step] = []
    spent = ledger = 0.0
    stopped = "--pilots 0: the prior's answer only" if not s.pilots else ""
    while not stopped:
        room = s.max_pilots - len(steps)
        if room <= 0:
            stopped = f"{s.max_pilots} pilots run (the most a plan runs)"
            break
        # Labels pilots bought count against the cap at their worst (the answer may buy
        # them later): the cap holds whatever the answer becomes.
        committed = spent + label_charge_usd(s, rows[len(known) :], 0)
        best = _best_design(
            s, rows, rows[len(known) :], (post, ans, raw_shares, raw_less), committed, room
        )
        if isinstance(best, str):
            stopped = best
            break
        design, gain, rate = best
        for pilot, usd in design:
            trained = {r.n_labels_used for r in rows[len(known) :] if r.n_unlabelled}
            compute = s.cost.usd(pilot.n_labels, pilot.n_unlabelled) if pilot.n_unlabelled else 0.0
            ran = run([pilot], compute + 1e-6, s.max_spend_usd - committed)  # > 0: a grid's rule
            ledger += ran.failed_usd + sum(r.sweep_spent_usd for r in ran.rows)
            spent += _charged_usd(s, ran, trained)
            rows += ran.rows
            committed = spent + label_charge_usd(s, rows[len(known) :], 0)
            row = ran.rows[0] if ran.rows else None
            share = gain / len(design)
            worth = share / rate if rate > 0 else math.inf
            steps.append(Step(pilot, share, usd, worth, row, spent))
            if row is None:
                stopped = f"the pilot L={pilot.n_labels} U={pilot.n_unlabelled} did not finish"
                break
        post, ans = _state(s, rows, raw_shares, buys)
    top = np.argsort(post.weights)[::-1][:3]
    labels = prior.names(s.known)
    return Plan(
        settings=s,
        prior_answer=first,
        steps=tuple(steps),
        answer=ans,
        reused=len(known),
        stopped_because=stopped,
        compute_usd=spent,
        label_usd=label_charge_usd(s, rows[len(known) :], ans.n_labelled),
        ledger_usd=ledger,
        nothing_learned=nothing_learned_note(s.task, rows)
        if rows and not learned_rows(rows)
        else "",
        weights=tuple((labels[i], float(post.weights[i])) for i in top),
    )


def _answer_text(a: prior.Answer, s: PlanSettings) -> str:
    low, high = a.fraction_interval
    score = (
        f"predicted score {a.score:.4f} [{a.score_interval[0]:.4f}, {a.score_interval[1]:.4f}]"
        " (90 % predictive: one full-size run)"
        if a.scored
        else "no score predicted until a trial of the task has run (its level is unknown)"
    )
    return (
        f"spend {100 * a.compute_fraction:.1f} % of ${s.budget_usd:g} on compute (the "
        f"hypotheses' best shares, 90 %: {low:.2f} to {high:.2f}): {a.n_labelled} labels, "
        f"{a.n_unlabelled} unlabelled examples distilled; {score}; expected regret "
        f"{100 * a.expected_regret:.2f} points"
    )


def format_plan(p: Plan) -> str:
    """What `sweep plan` prints, in order: the prior's answer, each pilot and why it was
    worth its price, the final answer, and the dollars spent deciding."""
    s = p.settings
    names = ", ".join(k.name for k in s.known)
    lines = [
        f"plan for {s.task} at B=${s.budget_usd:g} with {s.seed_labels} seed labels",
        f"prior (landscapes {names}; no pilot): {_answer_text(p.prior_answer, s)}",
    ]
    if p.reused:
        lines.append(f"  with the {p.reused} finished trials of the task in the store")
    for n, step in enumerate(p.steps, start=1):
        x = step.pilot
        got = f"scored {step.row.score:.4f}" if step.row else "did not finish"
        lines.append(
            f"  pilot {n}: L={x.n_labels} U={x.n_unlabelled}, ${step.price_usd:.2f}: expected to "
            f"cut the regret by {100 * step.gain_points:.2f} points (worth ${step.worth_usd:.2f}"
            f"); {got}"
        )
    if p.answer.scored and p.weights:
        lines.append(
            "  hypotheses weighed most: "
            + ", ".join(f"{name} ({weight:.2f})" for name, weight in p.weights)
        )
    lines += [
        f"answer: {p.nothing_learned}"
        if p.nothing_learned
        else f"answer: {_answer_text(p.answer, s)}",
        f"spent deciding: ${p.spent_usd:.2f} ({100 * p.spent_usd / s.budget_usd:.1f} % of the "
        f"budget: ${p.compute_usd:.2f} compute, ${p.label_usd:.2f} labels the answer does not "
        f"buy; cap ${s.max_spend_usd:.2f}); sweep ledger ${p.ledger_usd:.2f}; stopped: "
        f"{p.stopped_because}",
    ]
    return "\n".join(lines)
