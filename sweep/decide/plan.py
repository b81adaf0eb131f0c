"""`sweep plan`: "what share of B should buy compute?" answered from what is known, then
improved by pilots only where a pilot is worth its price.

1. The answer, free: every share of B becomes the task's own (L labels, U distilled
   examples) through its known prices and data, and the landscape posterior
   (`sweep.decide.posterior`: the measured landscapes, updated by every finished trial of the
   task) answers with the share of the best expected score among those that spend B.
2. Pilots by value of information, placed where the decision is made: at the answer's label
   count (or the most labels the cap affords below it), annotating only and distilling the
   pool sizes the landscapes measured. Each design (one pilot, or an annotate/distil pair on
   one teacher's labels) is valued by simulation: landscapes are drawn from the posterior,
   the pilots' scores observed on each with a trial's noise, the answer redone, and the
   regret it then has on that landscape compared with the regret of answering now. Its
   price is put in the same points (what its dollars would have bought as part of B). The
   best design runs only if it gains more than it costs; the plan may stop with none.
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
from sweep.decide import posterior, prior
from sweep.decide.costs import Buys, Costs
from sweep.decide.prior import Array
from sweep.tracking.results import TrialRow, learned_rows, nothing_learned_note

SMALLEST_POOL = 16  # unlabelled examples: a smaller pool measures no distillation
SIMULATIONS = 32  # landscapes drawn to value a design
NEAR_LABELS = 1.5  # a pilot's labels within this factor of the answer's: where it decides
POOLS = 3  # pool sizes a design may distil at one label count
LABEL_COUNTS = 3  # label counts a design may take
SMALLER_BUDGET = 0.75  # B less a quarter: how much a dollar of B is worth is read there


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
    pool_cap: int | None = None  # most unlabelled examples a trial may use
    label_cap: int | None = None  # the training split's rows: labels and pool come out of it
    max_pilots: int = 12
    landscapes: tuple[prior.Known, ...] | None = None  # None: the shipped ones
    pilots: bool = True  # False: the answer from what is known only (`--pilots 0`)

    def __post_init__(self) -> None:
        for name in ("budget_usd", "usd_per_label", "max_spend_usd"):
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
    def costs(self) -> Costs:
        return Costs.from_model(self.cost, self.usd_per_label, self.pool_cap, self.label_cap)

    @property
    def known(self) -> tuple[prior.Known, ...]:
        return self.landscapes if self.landscapes is not None else prior.shipped()

    def buys(self, budget_usd: float | None = None) -> Buys:
        return self.costs.buys(budget_usd or self.budget_usd, self.seed_labels)


@dataclass(frozen=True)
class Step:
    """One pilot: why it ran, what it scored and what the plan had spent after it."""

    pilot: Pilot
    gain_points: float  # expected drop in regret, points of score
    price_usd: float  # its price in B's meter, at worst
    worth_usd: float  # what the gain is worth at the answer's dollar value
    row: TrialRow | None  # None: it failed or the cap stopped it
    spent_usd: float


@dataclass(frozen=True)
class Plan:
    settings: PlanSettings
    prior_answer: posterior.Answer
    steps: tuple[Step, ...]
    answer: posterior.Answer
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
Design = tuple[Pilot, ...]


def label_charge_usd(s: PlanSettings, rows: Sequence[TrialRow], answer_labels: int) -> float:
    """Labels the pilots bought beyond the seed labels and beyond what the answer buys: a
    label the answer buys anyway is part of the answer, not of the decision."""
    most = max((r.n_labels_used for r in rows), default=0)
    return max(0, most - max(s.seed_labels, answer_labels)) * s.usd_per_label


def price_usd(s: PlanSettings, design: Design, trained: set[int], bought: int) -> float:
    """A design's price in B's meter at worst: each teacher once (none where one on the same
    labels is cached), its distillation, and every label beyond the seed labels and those
    bought already (the answer may buy them later, and then they are refunded to the
    decision, but the cap must hold whatever the answer becomes)."""
    compute, teachers = 0.0, set(trained)
    for p in design:
        if p.n_unlabelled:
            compute += s.cost.distillation_usd(p.n_unlabelled)
            compute += 0.0 if p.n_labels in teachers else s.cost.teacher_usd(p.n_labels)
            teachers.add(p.n_labels)
    most = max(p.n_labels for p in design)
    return compute + max(0, most - max(s.seed_labels, bought)) * s.usd_per_label


def designs(
    s: PlanSettings, ans: posterior.Answer, hyps: Sequence[prior.Hypothesis], left_usd: float,
    trained: set[int], bought: int,
) -> list[tuple[Design, float]]:  # fmt: skip
    """Affordable designs where the decision is made: at label counts from the answer's down
    to 1/NEAR_LABELS of it (a pilot far below the answer's labels measures another
    landscape, as the paper's FEVER shows: it gains nothing from distilling at 100 labels
    and 17.6 points at 500), annotating only, distilling up to POOLS pool sizes the
    landscapes measured (and the most the task's pool holds), and the two together."""
    top = min(ans.n_labelled, s.label_cap or ans.n_labelled)
    low = max(s.seed_labels, math.ceil(top / NEAR_LABELS), 1)
    if low > top:
        return []
    measured = [u for u in prior.measured_pools(hyps) if u >= SMALLEST_POOL]
    out: list[Design] = []
    for n in prior.log_spaced(low, top, LABEL_COUNTS):
        room = (s.label_cap - n) if s.label_cap else None
        most = min([c for c in (s.pool_cap, room) if c is not None], default=None)
        pools = [u for u in measured if most is None or u <= most]
        if most is not None and most >= SMALLEST_POOL:
            pools.append(most)  # the most the task's pool holds
        pools = [u for u in pools if price_usd(s, (Pilot(n, u),), trained, bought) <= left_usd]
        if len(pools) > POOLS:
            pools = [pools[round(i)] for i in np.linspace(0, len(pools) - 1, POOLS)]
        out.append((Pilot(n, 0),))
        for u in sorted(set(pools)):
            out += [(Pilot(n, u),), (Pilot(n, 0), Pilot(n, u))]
    priced = [(d, price_usd(s, d, trained, bought)) for d in out]
    return [(d, usd) for d, usd in priced if usd <= left_usd]


def simulated_gains(
    post: posterior.Posterior, options: Sequence[Design], buys: Buys, sd: float, seed: int
) -> Array:
    """[design]: the expected drop in regret (points of score) from observing each design:
    landscapes drawn from the posterior (the same draws for every design, so that designs
    are compared on the same truths), the pilots' scores read off each with noise `sd`, the
    answer redone, and its regret on that landscape against the regret of answering now."""
    post = post.deciding(buys)
    ok = posterior.eligible(buys).astype(int)
    points = sorted({(p.n_labels, p.n_unlabelled) for d in options for p in d})
    column = {p: buys.labelled.size + i for i, p in enumerate(points)}
    labelled = np.concatenate([buys.labelled, [float(n) for n, _ in points]])
    unlabelled = np.concatenate([buys.unlabelled, [float(u) for _, u in points]])
    draws = post.draws(labelled, unlabelled, SIMULATIONS, seed)
    noise = np.random.default_rng(seed + 1).normal(0.0, sd, (SIMULATIONS, len(points)))
    truths = draws[:, : buys.labelled.size]
    now = int(ok[np.argmax(post.expected(buys.labelled, buys.unlabelled)[ok])])
    gains = np.zeros(len(options))
    for k, design in enumerate(options):
        cols = [column[(p.n_labels, p.n_unlabelled)] for p in design]
        for i, truth in enumerate(truths):
            scores = draws[i, cols] + noise[i, np.array(cols) - buys.labelled.size]
            seen = [
                posterior.Observation(p.n_labels, p.n_unlabelled, float(y), sd)
                for p, y in zip(design, scores, strict=True)
            ]
            nxt = posterior.update(post.hypotheses, [*post.observations, *seen], post.misfit)
            nxt = nxt.deciding(buys)
            after = int(ok[np.argmax(nxt.expected(buys.labelled, buys.unlabelled)[ok])])
            gains[k] += (truth[after] - truth[now]) / SIMULATIONS
    return np.maximum(gains, 0.0)


def points_per_usd(post: posterior.Posterior, s: PlanSettings) -> float:
    """What a dollar of B is worth at the answer: the expected best score lost if B were a
    quarter smaller, per dollar (a decision's spending comes out of the same pocket)."""
    best = []
    for budget in (s.budget_usd, SMALLER_BUDGET * s.budget_usd):
        buys = s.buys(budget)
        ok = posterior.eligible(buys).astype(int)
        seen = post.deciding(s.buys())  # one weighing for both: the same hypotheses compared
        best.append(float(seen.expected(buys.labelled, buys.unlabelled)[ok].max()))
    return max(0.0, best[0] - best[1]) / ((1 - SMALLER_BUDGET) * s.budget_usd)


def _pilot_sd(post: posterior.Posterior) -> float:
    """What a pilot's score varies by: the task's own trials' noise, else the default."""
    if not post.observations:
        return posterior.NOISE_SD
    return float(np.sqrt(np.mean([o.sd**2 for o in post.observations])))


def _best_design(
    s: PlanSettings, post: posterior.Posterior, ans: posterior.Answer, left_usd: float,
    mine: Sequence[TrialRow], seed: int,
) -> tuple[Design, float, float, float] | str:  # fmt: skip
    """(design, its expected gain in points, its price, points per dollar) of the design
    with the best net value, or why none runs."""
    trained = {r.n_labels_used for r in mine if r.n_unlabelled}
    bought = max((r.n_labels_used for r in mine), default=0)
    # A point already measured (a pilot's, a stored trial's) would repeat its score.
    seen = {(r.n_labels_used, int(r.n_unlabelled)) for r in mine} | {
        (round(o.n_labelled), round(o.n_unlabelled)) for o in post.observations
    }
    options = [
        (d, usd)
        for d, usd in designs(s, ans, post.hypotheses, left_usd, trained, bought)
        if not any((p.n_labels, p.n_unlabelled) in seen for p in d)
    ]
    if not options:
        return f"the ${left_usd:.2f} left of the cap buys no new pilot"
    buys, sd = s.buys(), _pilot_sd(post)
    gains = simulated_gains(post, [d for d, _ in options], buys, sd, seed)
    rate = points_per_usd(post, s)
    prices = np.array([usd for _, usd in options])
    net = gains - rate * prices
    pick = int(np.argmax(net))
    if net[pick] <= 0 or gains[pick] <= 1e-5:
        where = " and ".join(f"L={p.n_labels} U={p.n_unlabelled}" for p in options[pick][0])
        worth = f"${gains[pick] / rate:.2f}" if rate > 0 else "nothing to a budget this flat"
        return (
            f"no pilot is worth its price (the best, {where}, would cut the expected regret "
            f"by {100 * gains[pick]:.2f} points, worth {worth}, for ${prices[pick]:.2f})"
        )
    return options[pick][0], float(gains[pick]), float(prices[pick]), rate


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


def _is(row: TrialRow, pilot: Pilot) -> bool:
    return (row.n_labels_used, int(row.n_unlabelled)) == (pilot.n_labels, pilot.n_unlabelled)


def _state(
    s: PlanSettings, rows: Sequence[TrialRow]
) -> tuple[posterior.Posterior, posterior.Answer]:
    post = posterior.update(prior.hypotheses(s.known), posterior.observations(rows))
    return post, posterior.answer(post, s.buys())


def plan(run: Runner, s: PlanSettings, known: Sequence[TrialRow] = (), seed: int = 0) -> Plan:
    """The answer from what is known, then pilots while one is worth its price (at most
    `max_pilots`, within `max_spend_usd` at their worst), then the answer from every
    observation."""
    rows = list(known)
    first = posterior.answer(posterior.update(prior.hypotheses(s.known)), s.buys())
    post, ans = _state(s, rows)
    steps: list[Step] = []
    spent = ledger = 0.0
    stopped = "--pilots 0: the answer from what is known only" if not s.pilots else ""
    while not stopped:
        mine = rows[len(known) :]
        if len(steps) >= s.max_pilots:
            stopped = f"{s.max_pilots} pilots run (the most a plan runs)"
            break
        # Labels pilots bought count against the cap at their worst (the answer may buy
        # them later): the cap holds whatever the answer becomes.
        committed = spent + label_charge_usd(s, mine, 0)
        best = _best_design(s, post, ans, s.max_spend_usd - committed, mine, seed + len(steps))
        if isinstance(best, str):
            stopped = best
            break
        design, gain, price, rate = best
        trained = {r.n_labels_used for r in mine if r.n_unlabelled}
        allowance = max(s.cost.usd(p.n_labels, p.n_unlabelled) for p in design) + 1e-6
        # A sweep prices each pilot at its whole allowance, a cached teacher included; the
        # plan has priced the design without it: the runner's cap gets that teacher back.
        cached = sum(
            s.cost.teacher_usd(n) for n in {p.n_labels for p in design if p.n_unlabelled} & trained
        )
        ran = run(list(design), allowance, s.max_spend_usd - committed + cached)
        ledger += ran.failed_usd + sum(r.sweep_spent_usd for r in ran.rows)
        spent += _charged_usd(s, ran, trained)
        rows += ran.rows
        worth = gain / rate if rate > 0 else math.inf
        for k, pilot in enumerate(design):
            row = next((r for r in ran.rows if _is(r, pilot)), None)
            steps.append(
                Step(
                    pilot,
                    gain / len(design),
                    price if k == 0 else 0.0,
                    worth / len(design),
                    row,
                    spent,
                )
            )
            if row is None:
                stopped = f"the pilot L={pilot.n_labels} U={pilot.n_unlabelled} did not finish"
        post, ans = _state(s, rows)
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
        weights=tuple(post.top(3)),
    )


def answer_text(a: posterior.Answer) -> str:
    """An answer in words: the share, its range, what it buys and spends, how sure it is."""
    low, high = a.fraction_interval
    score = (
        f"predicted score {a.score:.4f} [{a.score_interval[0]:.4f}, {a.score_interval[1]:.4f}]"
        " (90 % predictive: one full-size run)"
        if a.scored
        else "no score predicted until a trial of the task has run (its level is unknown)"
    )
    beyond = (
        "; its (L, U) lies beyond every landscape's measured range: an extrapolation"
        if a.beyond
        else ""
    )
    if not a.spends_budget:
        beyond += (
            f"; no share can spend ${a.budget_usd:g}: the task's data hold no more labels or "
            "pool (this share spends the most)"
        )
    return (
        f"spend {100 * a.compute_fraction:.0f} % of ${a.budget_usd:g} on compute (90 % range "
        f"of the best share: {low:.2f} to {high:.2f}): {a.n_labelled} labels, "
        f"{a.n_unlabelled} unlabelled examples distilled, ${a.spent_usd:.2f} of the "
        f"${a.budget_usd:g} spent; {score}; expected regret {100 * a.expected_regret:.2f} "
        f"points{beyond}"
    )


def format_plan(p: Plan) -> str:
    """What `sweep plan` prints, in order: the answer from what is known, each pilot and why
    it was worth its price, the final answer, and the dollars spent deciding."""
    s = p.settings
    names = ", ".join(k.name for k in s.known)
    lines = [
        f"plan for {s.task} at B=${s.budget_usd:g} with {s.seed_labels} seed labels",
        f"prior (landscapes {names}; no pilot): {answer_text(p.prior_answer)}",
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
        f"answer: {p.nothing_learned}" if p.nothing_learned else f"answer: {answer_text(p.answer)}",
        f"spent deciding: ${p.spent_usd:.2f} ({100 * p.spent_usd / s.budget_usd:.1f} % of the "
        f"budget: ${p.compute_usd:.2f} compute, ${p.label_usd:.2f} labels the answer does not "
        f"buy; cap ${s.max_spend_usd:.2f}); sweep ledger ${p.ledger_usd:.2f}; stopped: "
        f"{p.stopped_because}",
    ]
    return "\n".join(lines)
