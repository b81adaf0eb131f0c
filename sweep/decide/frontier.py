"""What split at what budget: the landscape posterior (`sweep.decide.posterior`), updated by
a task's finished trials, read at budgets that were never run.

What a budget buys is read off the same trials (the price per label they paid, their compute
prices by non-negative least squares once three distilling trials show them, else the task's
cost model rescaled to what they spent, and the pool cap a trial hit), bound by the task's
training rows when given. Each budget's answer is the posterior's: the share of the best
expected score among those that spend B, its 90 % range, its predictive interval and its
expected regret, and whether the budget, the labels and the pool lie inside what the trials
measured. No trial minimum: one trial fixes the task's level, each more sharpens the rest;
how far the posterior is from a trial it did not see is measured leave-one-out beside the
error of predicting the mean score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from objectives.budget import CostModel
from sweep.decide import posterior, prior
from sweep.decide.costs import Costs, fit_costs
from sweep.decide.costs import NotEnoughTrials as NotEnoughTrials
from sweep.tables import format_table
from sweep.tracking.results import TrialRow, label_price

NEAR = 0.03  # a trial this close to a recommended share measures it
MIN_DISTILLED = 3  # distilling trials that can price compute by least squares


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-out error of the posterior against predicting the mean score."""

    mae: float
    baseline_mae: float
    max_error: float


@dataclass(frozen=True)
class Frontier:
    post: posterior.Posterior
    costs: Costs
    held_out: HeldOut | None  # None: one trial, nothing to leave out
    n_trials: int
    sweeps: tuple[str, ...]
    budget_range: tuple[float, float]
    labelled_range: tuple[float, float]
    unlabelled_max: float
    seed_labels: int


def prices(rows: Sequence[TrialRow], cost: CostModel | None, pool_cap: float | None,
           train_rows: int | None) -> Costs:  # fmt: skip
    """What a budget buys, from the trials: least squares over three or more distilling
    trials, else the task's cost model rescaled to them (one distilling trial suffices)."""
    distilled = [r for r in rows if r.n_unlabelled > 0 and r.compute_spent_usd > 0]
    if len({(r.n_labels_used, r.n_unlabelled) for r in distilled}) >= MIN_DISTILLED:
        fitted = fit_costs(rows, pool_cap)
        return Costs(**{**asdict(fitted), "train_rows": train_rows})
    priced = [p for p in map(label_price, rows) if p is not None]
    if cost is None or not priced:
        raise NotEnoughTrials(
            "no trial shows what a label or the compute costs; run one that buys labels and "
            "one that distils (`sweep run` or `sweep grid`)"
        )
    model = Costs.from_model(cost, float(np.median(priced)), pool_cap, train_rows)
    return model.fitted_to(rows)


def fit(
    rows: Sequence[TrialRow],
    task: str,
    cost: CostModel | None = None,
    seed_labels: int | None = None,
    pool_cap: float | None = None,
    train_rows: int | None = None,
    landscapes: Sequence[prior.Known] | None = None,
    leave_one_out: bool = True,
) -> Frontier:
    """The posterior given the trials (those that learned something), with its prices and
    (unless `leave_one_out` is False: one update per trial) its leave-one-out error."""
    observed = posterior.observations(rows)
    if not observed:
        raise NotEnoughTrials(
            f"no finished trial of task={task!r} learned anything; run a sweep first "
            f"(`sweep run --task {task} ...`), or ask `sweep plan` for the answer before any"
        )
    hyps = prior.hypotheses(landscapes if landscapes is not None else prior.shipped())
    post = posterior.update(hyps, observed)
    budget_rows = [r for r in rows if not r.grid]
    seeds = [r.n_seed_labels for r in budget_rows]
    totals = [r.budget_usd if not r.grid else r.practitioner_usd for r in rows]
    labelled = [o.n_labelled for o in observed]
    return Frontier(
        post=post,
        costs=prices(rows, cost, pool_cap, train_rows),
        held_out=_held_out(hyps, observed) if leave_one_out else None,
        n_trials=len(observed),
        sweeps=tuple(sorted({r.sweep for r in rows})),
        budget_range=(min(totals), max(totals)),
        labelled_range=(min(labelled), max(labelled)),
        unlabelled_max=max(o.n_unlabelled for o in observed),
        seed_labels=seed_labels if seed_labels is not None else _most_common(seeds),
    )


def _most_common(values: Sequence[int]) -> int:
    return max(set(values), key=values.count) if values else 0


def _held_out(
    hyps: Sequence[prior.Hypothesis], observed: Sequence[posterior.Observation]
) -> HeldOut | None:
    if len(observed) < 2:
        return None
    errors, baseline = [], []
    for i, o in enumerate(observed):
        rest = [x for j, x in enumerate(observed) if j != i]
        post = posterior.update(hyps, rest)
        guess = post.expected(np.array([o.n_labelled]), np.array([o.n_unlabelled]))[0]
        errors.append(abs(guess - o.score))
        baseline.append(abs(np.mean([x.score for x in rest]) - o.score))
    return HeldOut(float(np.mean(errors)), float(np.mean(baseline)), float(np.max(errors)))


@dataclass(frozen=True)
class Recommendation:
    budget_usd: float
    compute_fraction: float
    fraction_interval: tuple[float, float]
    score: float
    score_interval: tuple[float, float]
    expected_regret: float
    n_labels: int
    n_new_labels: int
    n_unlabelled: int
    spent_usd: float
    inside: bool
    why_outside: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(model: Frontier, budget_usd: float, draws: int = posterior.DRAWS) -> Recommendation:
    """The posterior's answer at `budget_usd`, and whether it lies inside what the trials
    measured (outside: an extrapolation; its interval says how much less is known)."""
    if not math.isfinite(budget_usd) or budget_usd <= 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got budget_usd={budget_usd!r}.")
    ans = posterior.answer(model.post, model.costs.buys(budget_usd, model.seed_labels), draws)
    reasons = []
    low, high = model.budget_range
    if not low <= budget_usd <= high:
        reasons.append(f"budget outside the trials' ${low:g}-${high:g}")
    first, last = model.labelled_range
    if not first <= ans.n_labelled <= last:
        reasons.append(f"{ans.n_labelled} labels outside the trials' {first:.0f}-{last:.0f}")
    if ans.n_unlabelled > model.unlabelled_max:
        reasons.append(
            f"{ans.n_unlabelled} unlabelled above the trials' {model.unlabelled_max:.0f}"
        )
    if ans.beyond:
        reasons.append("beyond every landscape's measured range")
    return Recommendation(
        budget_usd=budget_usd,
        compute_fraction=ans.compute_fraction,
        fraction_interval=ans.fraction_interval,
        score=ans.score,
        score_interval=ans.score_interval,
        expected_regret=ans.expected_regret,
        n_labels=ans.n_labelled,
        n_new_labels=ans.n_labelled - model.seed_labels,
        n_unlabelled=ans.n_unlabelled,
        spent_usd=ans.spent_usd,
        inside=not reasons,
        why_outside="; ".join(reasons),
    )


# --- checking against trials left out ------------------------------------------------------


@dataclass(frozen=True)
class HoldoutCheck:
    budget_usd: float
    rows: tuple[tuple[float, float, float], ...]  # (fraction, predicted, measured)
    recommended: Recommendation
    measured_best_fraction: float
    measured_best_score: float
    # The measured trial at the recommended share (within NEAR of it), if one was run.
    measured_at_recommended: float | None


def holdout(
    rows: Sequence[TrialRow], task: str, budget_usd: float, **fit_options: Any
) -> HoldoutCheck:
    """Fit without the trials at `budget_usd` and compare the posterior with them."""
    kept = [r for r in rows if r.grid or not math.isclose(r.budget_usd, budget_usd)]
    left_out = [r for r in rows if not r.grid and math.isclose(r.budget_usd, budget_usd)]
    if not left_out:
        budgets = sorted({r.budget_usd for r in rows if not r.grid})
        raise ValueError(
            f"--holdout-budget {budget_usd:g}: no trials at that budget; budgets with trials: "
            f"{', '.join(f'{b:g}' for b in budgets)}."
        )
    model = fit(kept, task, **fit_options)
    predicted = model.post.expected(
        np.array([float(r.n_labels_used) for r in left_out]),
        np.array([float(r.n_unlabelled) for r in left_out]),
    )
    rec = recommend(model, budget_usd)
    best = max(left_out, key=lambda r: r.score)
    nearest = min(left_out, key=lambda r: abs(r.compute_fraction - rec.compute_fraction))
    near = abs(nearest.compute_fraction - rec.compute_fraction) <= NEAR
    return HoldoutCheck(
        budget_usd=budget_usd,
        rows=tuple(
            sorted(
                (float(r.compute_fraction), float(p), float(r.score))
                for r, p in zip(left_out, predicted, strict=True)
            )
        ),
        recommended=rec,
        measured_best_fraction=float(best.compute_fraction),
        measured_best_score=best.score,
        measured_at_recommended=nearest.score if near else None,
    )


def frontier_json(
    model: Frontier, recs: list[Recommendation], check: Any, path: Path
) -> dict[str, Any]:
    return {
        "model": {
            "hypotheses_weighed_most": model.post.top(3),
            "costs": asdict(model.costs),
            "n_trials": model.n_trials,
            "sweeps": list(model.sweeps),
            "held_out": None if model.held_out is None else asdict(model.held_out),
            "seed_labels": model.seed_labels,
        },
        "budgets": [r.to_dict() for r in recs],
        "holdout": None if check is None else asdict(check),
        "plot": str(path),
    }


def format_frontier(model: Frontier, recs: list[Recommendation], check: Any) -> str:
    held = model.held_out
    error = (
        f"leave-one-out error {held.mae:.4f} mean, {held.max_error:.4f} worst (predicting the "
        f"mean score: {held.baseline_mae:.4f})"
        if held
        else "one trial: no leave-one-out error yet"
    )
    weighed = ", ".join(f"{name} ({w:.2f})" for name, w in model.post.top(3))
    lines = [
        f"the landscape posterior on {model.n_trials} trials of {', '.join(model.sweeps)} "
        f"(hypotheses weighed most: {weighed}); {error}",
        "",
    ]
    header = ("budget", "best f [90 %]", "labels", "unlabelled", "spent",
              "predicted score [90 %]", "expected regret", "range")  # fmt: skip
    table = [
        (
            f"${r.budget_usd:g}",
            "{:.2f} [{:.2f}, {:.2f}]".format(r.compute_fraction, *r.fraction_interval),
            f"{r.n_labels} (+{r.n_new_labels})",
            str(r.n_unlabelled),
            f"${r.spent_usd:.2f}",
            f"{r.score:.4f} [{r.score_interval[0]:.4f}, {r.score_interval[1]:.4f}]",
            f"{100 * r.expected_regret:.2f} points",
            "inside" if r.inside else f"outside: {r.why_outside}",
        )
        for r in recs
    ]
    lines.append(format_table(header, table))
    if check is not None:
        rec = check.recommended
        lines += [
            "",
            f"held-out budget ${check.budget_usd:g} (its trials were left out of the fit):",
            *(
                f"  f={f:.3f}: predicted {p:.4f}, measured {m:.4f} (error {p - m:+.4f})"
                for f, p, m in check.rows
            ),
            f"  recommended f={rec.compute_fraction:.2f} predicted {rec.score:.4f}; best "
            f"measured f={check.measured_best_fraction:.3f} scored "
            f"{check.measured_best_score:.4f}",
            f"  measured at the recommended share: {check.measured_at_recommended:.4f}"
            if check.measured_at_recommended is not None
            else f"  no trial ran near f={rec.compute_fraction:.2f}; measure it with `sweep "
            f"trial --budget {check.budget_usd:g} --compute-fraction {rec.compute_fraction:.2f}`",
        ]
    return "\n".join(lines)
