"""What split at what budget: a learning-curve model fitted to a task's finished trials,
and the allocation it recommends for budgets that were never run.

Score (monotone and saturating in both kinds of data, b >= 0 and g >= 0):

    score(L, U) = min(1, a - b * (L + w * U) ** -alpha + g * U / (U + k))

with L the labelled examples the student trained on and U the unlabelled examples it
distilled (w: what one distilled example is worth in labels; w = 0 leaves the saturating
bonus alone), capped where U > 0 by the teacher's own curve in L when trials log teacher
scores. For each (alpha, k, w) on a log grid the rest is a linear least-squares problem, so
a fit is deterministic and cheap enough to repeat for every bootstrap resample and every
left-out trial (all of them at once, as batched 3x3 solves).

What a budget buys is read off the same trials:

    labels  = seed + floor((1 - f) * B / usd_per_label)
    compute = c0 + c1 * L + c2 * U      (non-negative least squares over distillation trials)
    U       = min(affordable, pool cap), or 0 when f * B cannot pay for the teacher.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# FRACTIONS and NotEnoughTrials are part of the frontier's own interface (what it weighs and
# what it raises), so they are re-exported here; the rest of costs is imported by name.
from sweep.decide.costs import FRACTIONS as FRACTIONS
from sweep.decide.costs import Array, Costs, fit_costs
from sweep.decide.costs import NotEnoughTrials as NotEnoughTrials
from sweep.tables import format_table
from sweep.tracking.results import TrialRow

MIN_TRIALS = 8
MIN_DISTINCT = 3  # distinct label counts, and distinct unlabelled counts (zero included)
NEAR = 0.03  # a trial this close to a recommended share measures it
INTERVAL = (5.0, 95.0)  # percentiles of the bootstrap: a 90 % interval
# Learning-curve exponents seen in practice lie in about [0.1, 1]; below 0.1 a power law
# is a straight line in log L that extrapolates without limit.
_ALPHAS = np.geomspace(0.1, 2.0, 16)
# Distilled examples counted as w labels each (Hestness et al.'s power law in the data a
# student sees); w = 0 leaves only the saturating bonus g * U / (U + k).
_WORTHS = np.concatenate([[0.0], np.geomspace(0.01, 1.0, 6)])
SCORE_CEILING = 1.0  # every metric of the task registry lies in [0, 1]


# --- the score model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One fitted learning curve."""

    a: float
    b: float
    alpha: float
    g: float
    k: float
    w: float = 0.0  # what one distilled example is worth in labels (0: only the g term)

    def predict(self, n_labelled: Array, n_unlabelled: Array) -> Array:
        unlabelled = np.asarray(n_unlabelled, dtype=float)
        effective = np.maximum(np.asarray(n_labelled, dtype=float) + self.w * unlabelled, 1.0)
        gain = unlabelled / (unlabelled + self.k)
        score = self.a - self.b * effective**-self.alpha + self.g * gain
        return np.minimum(score, SCORE_CEILING)

    def formula(self) -> str:
        effective = f"(L + {self.w:.3g} U)" if self.w else "L"
        return (
            f"score = {self.a:.4f} - {self.b:.4f} * {effective}^-{self.alpha:.3f}"
            f" + {self.g:.4f} * U / (U + {self.k:.0f})"
        )


def _k_grid(n_unlabelled: Array) -> Array:
    positive = n_unlabelled[n_unlabelled > 0]
    low = max(1.0, float(positive.min()) / 20) if positive.size else 1.0
    high = max(low * 10, float(n_unlabelled.max()) * 20)
    return np.geomspace(low, high, 16)


def fit_curves(
    n_labelled: Array,
    n_unlabelled: Array,
    scores: Array,
    weights: Array,
) -> list[Curve]:
    """One least-squares curve per row of `weights` (shape: fits x trials).

    Every (alpha, k, w) triple of the grid and every sign pattern of (b, g) is solved at once;
    the best feasible solution (b, g >= 0) of each fit wins.
    """
    ks = _k_grid(n_unlabelled)
    alpha_3d, k_3d, w_3d = np.meshgrid(_ALPHAS, ks, _WORTHS, indexing="ij")
    alpha, k, worth = alpha_3d.ravel(), k_3d.ravel(), w_3d.ravel()
    effective = np.maximum(n_labelled[None, :] + worth[:, None] * n_unlabelled[None, :], 1.0)
    x_labelled = -(effective ** -alpha[:, None])  # (pairs, trials)
    x_unlabelled = n_unlabelled[None, :] / (n_unlabelled[None, :] + k[:, None])
    design = np.stack([np.ones_like(x_labelled), x_labelled, x_unlabelled], axis=-1)
    # Column masks: all three; without g; without b; the mean only.
    masks = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 0, 0]], dtype=float)
    fits: list[Curve] = []
    for w in np.atleast_2d(weights):
        xw = design * w[None, :, None]
        gram = np.einsum("pni,pnj->pij", xw, design)  # (pairs, 3, 3)
        moment = np.einsum("pni,n->pi", xw, scores)
        # A masked column gets a unit diagonal and a zero moment, so its coefficient is 0.
        m = masks[:, None, :]
        grams = gram[None] * m[..., None] * m[..., None, :] + np.eye(3) * (1 - m)[..., None]
        grams = grams + np.eye(3) * 1e-12
        coef = np.linalg.solve(grams, (moment[None] * m)[..., None])[..., 0]  # (4, pairs, 3)
        residual = scores[None, None, :] - np.einsum("pni,spi->spn", design, coef)
        sse = np.einsum("spn,n->sp", residual**2, w)
        sse[(coef[..., 1] < 0) | (coef[..., 2] < 0)] = np.inf
        s, p = np.unravel_index(int(np.argmin(sse)), sse.shape)
        a, b, g = (float(v) for v in coef[s, p])
        fits.append(Curve(a, b, float(alpha[p]), g, float(k[p]), float(worth[p])))
    return fits


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-out error of the model against predicting the mean score."""

    mae: float
    baseline_mae: float
    max_error: float


# A student distilled from a teacher rarely beats it by more than this (the teacher's
# ceiling; Kang et al.'s students stay below their T5-XXL teachers).
TEACHER_MARGIN = 0.01


@dataclass(frozen=True)
class LearningCurve:
    curve: Curve
    boots: tuple[Curve, ...]
    # The teacher's own curve in L (g = 0), fitted to the teacher scores that distillation
    # trials log; None when fewer than MIN_DISTINCT label counts have one.
    teacher: Curve | None
    costs: Costs
    held_out: HeldOut
    n_trials: int
    sweeps: tuple[str, ...]
    budget_range: tuple[float, float]
    labelled_range: tuple[float, float]
    unlabelled_max: float
    seed_labels: int
    best_seen: float = SCORE_CEILING  # the best score a fitted trial or its teacher reached

    def predict(self, n_labelled: Array, n_unlabelled: Array, curve: Curve | None = None) -> Array:
        """`curve` (the central fit unless given), capped by the teacher's ceiling where the
        student distils (U > 0)."""
        score = (curve or self.curve).predict(n_labelled, n_unlabelled)
        if self.teacher is None:
            return score
        cap = self.teacher.predict(n_labelled, np.zeros_like(n_labelled)) + TEACHER_MARGIN
        return np.where(np.asarray(n_unlabelled) > 0, np.minimum(score, cap), score)


def _teacher_curve(rows: Sequence[TrialRow]) -> Curve | None:
    taught = [r for r in rows if r.n_unlabelled > 0 and r.teacher_score is not None]
    labelled = np.array([float(r.n_labels_used) for r in taught])
    if len(set(labelled)) < MIN_DISTINCT:
        return None
    scores = np.array([float(r.teacher_score or 0.0) for r in taught])
    zeros = np.zeros_like(labelled)
    (curve,) = fit_curves(labelled, zeros, scores, np.ones(len(taught)))
    return curve


def _arrays(rows: Sequence[TrialRow]) -> tuple[Array, Array, Array]:
    return (
        np.array([float(r.n_labels_used or r.n_seed_labels + r.n_new_labels) for r in rows]),
        np.array([float(r.n_unlabelled) for r in rows]),
        np.array([r.score for r in rows]),
    )


def check_enough(rows: Sequence[TrialRow], task: str) -> None:
    labelled, unlabelled, _ = _arrays(rows)
    n_l, n_u = len(set(labelled)), len(set(unlabelled))
    trials, distinct = MIN_TRIALS, MIN_DISTINCT  # named for the message below
    if len(rows) < trials or n_l < distinct or n_u < distinct or not unlabelled.any():
        raise NotEnoughTrials(
            f"too few trials to fit a learning curve for task={task!r}: {len(rows)} finished "
            f"trials with {n_l} distinct label counts and {n_u} distinct unlabelled counts; "
            f"need at least {trials} trials, {distinct} label counts and "
            f"{distinct} unlabelled counts, some above zero. Run sweeps at more budgets "
            "(`sweep run --budget ...`) or the paper's grid (`sweep grid`)."
        )


def fit(
    rows: Sequence[TrialRow],
    task: str,
    seed_labels: int | None = None,
    n_boot: int = 300,
    pool_cap: float | None = None,
    seed: int = 0,
) -> LearningCurve:
    """Fit the curve, its bootstrap replicates and its leave-one-out error; distilled
    students are capped by the teacher's own curve where the trials log teacher scores."""
    check_enough(rows, task)
    labelled, unlabelled, scores = _arrays(rows)
    n = len(rows)
    (curve,) = fit_curves(labelled, unlabelled, scores, np.ones(n))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)
    boots = fit_curves(labelled, unlabelled, scores, counts)
    loo = fit_curves(labelled, unlabelled, scores, 1.0 - np.eye(n))
    errors = np.array(
        [
            abs(c.predict(labelled[i : i + 1], unlabelled[i : i + 1])[0] - scores[i])
            for i, c in enumerate(loo)
        ]
    )
    baseline = np.abs(scores - (scores.sum() - scores) / (n - 1))
    budget_rows = [r for r in rows if not r.grid]
    seeds = Counter(r.n_seed_labels for r in budget_rows).most_common(1)
    totals = [r.budget_usd if not r.grid else r.practitioner_usd for r in rows]
    return LearningCurve(
        curve=curve,
        boots=tuple(boots),
        teacher=_teacher_curve(rows),
        costs=fit_costs(rows, pool_cap),
        held_out=HeldOut(float(errors.mean()), float(baseline.mean()), float(errors.max())),
        n_trials=n,
        sweeps=tuple(sorted({r.sweep for r in rows})),
        budget_range=(min(totals), max(totals)),
        labelled_range=(float(labelled.min()), float(labelled.max())),
        unlabelled_max=float(unlabelled.max()),
        seed_labels=seed_labels if seed_labels is not None else (seeds[0][0] if seeds else 0),
        best_seen=max([*scores, *(r.teacher_score for r in rows if r.teacher_score is not None)]),
    )


@dataclass(frozen=True)
class Recommendation:
    budget_usd: float
    compute_fraction: float
    fraction_interval: tuple[float, float]
    score: float
    score_interval: tuple[float, float]
    n_labels: int
    n_new_labels: int
    n_unlabelled: int
    device_hours: float
    spent_usd: float
    inside: bool
    why_outside: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(model: LearningCurve, budget_usd: float) -> Recommendation:
    """The compute share with the best predicted score at `budget_usd`, with 90 % intervals
    over the bootstrap fits (of the score at that share, and of each fit's own best share)."""
    if not math.isfinite(budget_usd) or budget_usd <= 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got budget_usd={budget_usd!r}.")
    labelled, unlabelled, spent = model.costs.buys(budget_usd, model.seed_labels)
    predicted = model.predict(labelled, unlabelled)
    best = int(np.argmax(predicted))
    boot_at_best = np.array(
        [
            model.predict(labelled[best : best + 1], unlabelled[best : best + 1], c)[0]
            for c in model.boots
        ]
    )
    boot_best_f = np.array(
        [FRACTIONS[int(np.argmax(model.predict(labelled, unlabelled, c)))] for c in model.boots]
    )
    reasons = []
    low, high = model.budget_range
    if not low <= budget_usd <= high:
        reasons.append(f"budget outside the trials' ${low:g}-${high:g}")
    if not model.labelled_range[0] <= labelled[best] <= model.labelled_range[1]:
        reasons.append(
            f"{labelled[best]:.0f} labels outside the trials' "
            f"{model.labelled_range[0]:.0f}-{model.labelled_range[1]:.0f}"
        )
    if unlabelled[best] > model.unlabelled_max:
        reasons.append(
            f"{unlabelled[best]:.0f} unlabelled above the trials' {model.unlabelled_max:.0f}"
        )
    score, (low_score, high_score) = float(predicted[best]), _interval(boot_at_best)
    # Never above the best score reached by more than the fit's own interval: a curve
    # extrapolated far past its trials can promise scores nothing has shown.
    above = max(0.0, high_score - score)
    cap = model.best_seen + above
    if score > cap:
        reasons.append(
            f"the curve predicted {score:.4f}, above the best score reached "
            f"({model.best_seen:.4f}) by more than its interval: capped there"
        )
        # The interval moves down with the point and keeps its lower width.
        score, low_score, high_score = cap, low_score - (score - cap), cap
    compute_usd = spent[best] - (labelled[best] - model.seed_labels) * model.costs.usd_per_label
    return Recommendation(
        budget_usd=budget_usd,
        compute_fraction=float(FRACTIONS[best]),
        fraction_interval=_interval(boot_best_f),
        score=score,
        score_interval=(low_score, high_score),
        n_labels=int(labelled[best]),
        n_new_labels=int(labelled[best]) - model.seed_labels,
        n_unlabelled=int(unlabelled[best]),
        device_hours=float(compute_usd / model.costs.usd_per_device_hour),
        spent_usd=float(spent[best]),
        inside=not reasons,
        why_outside="; ".join(reasons),
    )


def _interval(values: Array) -> tuple[float, float]:
    low, high = np.percentile(values, INTERVAL)
    return float(low), float(high)


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
    """Fit without the trials at `budget_usd` and compare the model with them."""
    kept = [r for r in rows if r.grid or not math.isclose(r.budget_usd, budget_usd)]
    left_out = [r for r in rows if not r.grid and math.isclose(r.budget_usd, budget_usd)]
    if not left_out:
        budgets = sorted({r.budget_usd for r in rows if not r.grid})
        raise ValueError(
            f"--holdout-budget {budget_usd:g}: no trials at that budget; budgets with trials: "
            f"{', '.join(f'{b:g}' for b in budgets)}."
        )
    model = fit(kept, task, **fit_options)
    labelled, unlabelled, scores = _arrays(left_out)
    predicted = model.predict(labelled, unlabelled)
    rec = recommend(model, budget_usd)
    best = max(left_out, key=lambda r: r.score)
    nearest = min(left_out, key=lambda r: abs(r.compute_fraction - rec.compute_fraction))
    near = abs(nearest.compute_fraction - rec.compute_fraction) <= NEAR
    return HoldoutCheck(
        budget_usd=budget_usd,
        rows=tuple(
            (float(r.compute_fraction), float(p), float(s))
            for r, p, s in sorted(
                zip(left_out, predicted, scores, strict=True), key=lambda t: t[0].compute_fraction
            )
        ),
        recommended=rec,
        measured_best_fraction=float(best.compute_fraction),
        measured_best_score=best.score,
        measured_at_recommended=nearest.score if near else None,
    )


def frontier_json(model: Any, recs: list[Any], check: Any, path: Path) -> dict[str, Any]:
    return {
        "model": {
            "formula": model.curve.formula(),
            "curve": asdict(model.curve),
            "costs": asdict(model.costs),
            "n_trials": model.n_trials,
            "sweeps": list(model.sweeps),
            "held_out": asdict(model.held_out),
            "seed_labels": model.seed_labels,
        },
        "budgets": [r.to_dict() for r in recs],
        "holdout": None if check is None else asdict(check),
        "plot": str(path),
    }


def format_frontier(model: Any, recs: list[Any], check: Any) -> str:
    held = model.held_out
    teacher = model.teacher
    lines = [
        f"{model.curve.formula()}  (L labels, U unlabelled)"
        + (
            f"; distilled students capped by the teacher's {teacher.a:.4f} - "
            f"{teacher.b:.4f} * L^-{teacher.alpha:.3f}"
            if teacher
            else ""
        ),
        f"fitted on {model.n_trials} trials of {', '.join(model.sweeps)}; leave-one-out "
        f"error {held.mae:.4f} mean, {held.max_error:.4f} worst (predicting the mean score: "
        f"{held.baseline_mae:.4f})",
        "",
    ]
    header = (
        "budget",
        "best f [90 %]",
        "labels",
        "unlabelled",
        "device-h",
        "spent",
        "predicted score [90 %]",
        "range",
    )
    table = [
        (
            f"${r.budget_usd:g}",
            "{:.2f} [{:.2f}, {:.2f}]".format(r.compute_fraction, *r.fraction_interval),
            f"{r.n_labels} (+{r.n_new_labels})",
            str(r.n_unlabelled),
            f"{r.device_hours:.4f}",
            f"${r.spent_usd:.2f}",
            f"{r.score:.4f} [{r.score_interval[0]:.4f}, {r.score_interval[1]:.4f}]",
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
