"""`sweep frontier` reads the landscape posterior at budgets never run: on a landscape whose
best split is known (the paper's FEVER grid, replayed; the prior from the other grids) it
must find it, say when it extrapolates, answer from any number of trials, and read what a
budget buys off the trials."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.standins import ReplayTable
from sweep.decide import prior
from sweep.decide.costs import FRACTIONS, Costs, NotEnoughTrials, fit_costs
from sweep.decide.frontier import Frontier, fit, holdout, recommend
from sweep.tracking.results import TrialRow, pareto_set, priced_like

TRUTH = ReplayTable.from_csv(prior.LANDSCAPES / "fever.csv")
MODEL = PAPER_COST_MODELS["fever"]
COSTS = dataclasses.replace(
    Costs.from_model(MODEL, 0.129, pool_cap=None), usd_per_device_hour=1.875
)
SEED_LABELS = 100
OTHERS = prior.shipped(exclude=TRUTH)  # leave-one-out: FEVER never informs its own prior


def trial(budget: float, index: int, noise: float = 0.0, seed: int = 0) -> TrialRow:
    """The trial at FRACTIONS[index] of `budget`, scored by the FEVER grid (plus noise)."""
    buys = COSTS.buys(budget, SEED_LABELS)
    labels, unlabelled, spent = buys.at(index)
    n_new = labels - SEED_LABELS
    compute = spent - n_new * COSTS.usd_per_label
    score = TRUTH.score(labels, unlabelled) + np.random.default_rng(seed).normal(0, noise)
    return TrialRow(
        run_id=f"{budget}-{index}-{seed}", sweep="syn", task="fever", budget_usd=budget,
        n_seed_labels=SEED_LABELS, compute_fraction=float(FRACTIONS[index]),
        strategy="annotate" if index == 0 else "mixed", score=float(score), score_std=0.0,
        n_seeds=1, n_new_labels=n_new, n_unlabelled=float(unlabelled),
        device_hours=compute / 1.875, practitioner_usd=spent, sweep_spent_usd=0.0,
        trial_number=None, start_time_ms=0, n_labels_used=labels,
        annotation_usd=n_new * COSTS.usd_per_label, compute_usd=float(FRACTIONS[index]) * budget,
        compute_spent_usd=compute, score_low=float(score) - 0.016, score_high=float(score) + 0.016,
    )  # fmt: skip


def sweeps(
    budgets: tuple[float, ...], shares: tuple[int, ...] = (0, 30, 60, 100)
) -> list[TrialRow]:
    return [trial(b, i, noise=0.01, seed=int(b) + k) for b in budgets for k, i in enumerate(shares)]


def regret(budget: float, share: float) -> float:
    """The FEVER grid's best score at `budget` minus its score at `share`, in points."""
    buys = COSTS.buys(budget, SEED_LABELS)
    truth = np.array(
        [TRUTH.score(int(n), int(u)) for n, u in zip(buys.labelled, buys.unlabelled, strict=True)]
    )
    return float(100 * (truth[buys.spends].max() - truth[round(share * 100)]))


def _fit(rows: list[TrialRow]) -> Frontier:
    return fit(rows, "fever", cost=MODEL, landscapes=OTHERS)


@pytest.mark.parametrize("budget", [200.0, 600.0])
def test_the_posterior_answers_near_the_best_split_at_a_budget_it_never_saw(budget: float) -> None:
    model = _fit(sweeps((100.0, 300.0, 1000.0)))
    rec = recommend(model, budget)
    assert regret(budget, rec.compute_fraction) < 1.0
    low, high = rec.fraction_interval
    assert low <= rec.compute_fraction <= high
    assert rec.inside and rec.why_outside == ""
    assert budget - rec.spent_usd <= 0.129 + 0.01 * budget + 1e-9
    assert rec.n_labels == SEED_LABELS + rec.n_new_labels
    assert rec.score_interval[0] < rec.score < rec.score_interval[1]


def test_one_trial_is_enough_to_answer_and_none_that_learned_is_not() -> None:
    one = _fit([trial(300.0, 30)])
    assert one.held_out is None and one.n_trials == 1
    assert recommend(one, 300.0).spent_usd > 290
    constant = dataclasses.replace(trial(300.0, 30), degenerate="student")
    with pytest.raises(NotEnoughTrials, match="no finished trial of task='fever' learned"):
        _fit([constant])


def test_leave_one_out_error_is_measured_against_predicting_the_mean() -> None:
    model = _fit(sweeps((100.0, 300.0, 1000.0)))
    held = model.held_out
    assert held is not None and held.mae < held.baseline_mae


def test_extrapolation_is_flagged() -> None:
    model = _fit(sweeps((100.0, 300.0)))
    inside, outside = recommend(model, 200.0), recommend(model, 3000.0)
    assert inside.inside and not outside.inside
    assert "budget outside the trials' $100-$300" in outside.why_outside


def test_held_out_budget_compares_predictions_with_measurements() -> None:
    rows = sweeps((100.0, 300.0, 1000.0))
    check = holdout(rows, "fever", 300.0, cost=MODEL, landscapes=OTHERS)
    assert len(check.rows) == 4
    for _, predicted, measured in check.rows:
        assert abs(predicted - measured) < 0.06
    assert check.recommended.budget_usd == 300.0
    with pytest.raises(ValueError, match="no trials at that budget; budgets with trials: 100, 300"):
        holdout(rows, "fever", 5.0, cost=MODEL, landscapes=OTHERS)


def test_what_a_budget_buys_is_read_off_the_trials() -> None:
    model = _fit(sweeps((100.0, 300.0, 1000.0)))
    costs = model.costs
    assert costs.usd_per_label == pytest.approx(0.129)
    assert costs.usd_per_unlabelled == pytest.approx(MODEL.d_usd_per_1k_unlabelled / 1000, rel=1e-3)
    # One distilling trial: the task's cost model, rescaled to what it spent.
    one = _fit([trial(300.0, 0), trial(300.0, 30)])
    assert one.costs.usd_per_unlabelled == pytest.approx(MODEL.d_usd_per_1k_unlabelled / 1000)


def test_pool_cap_is_read_from_trials_that_left_compute_money_unspent() -> None:
    rows = sweeps((100.0, 300.0))
    assert fit_costs(rows).pool_cap is None
    capped = [
        r
        if r.n_unlabelled == 0
        else TrialRow(
            **{
                **r.__dict__,
                "n_unlabelled": min(r.n_unlabelled, 500.0),
                "compute_spent_usd": min(r.compute_spent_usd, 4.0),
                "device_hours": min(r.compute_spent_usd, 4.0) / 1.875,
            }
        )
        for r in rows
    ]
    assert fit_costs(capped).pool_cap == 500.0


def test_mixed_prices_are_refused() -> None:
    rows = sweeps((100.0, 300.0))
    cheaper = [TrialRow(**{**r.__dict__, "annotation_usd": r.annotation_usd / 2}) for r in rows[:3]]
    with pytest.raises(ValueError, match="priced differently .* --sweep NAME"):
        fit_costs(cheaper + rows[3:])
    # `sweep plan` keeps the trials priced like itself.
    price = rows[4].annotation_usd / rows[4].n_new_labels
    kept, other = priced_like(cheaper + rows[3:], price, 1.875)
    assert kept == rows[3:] and other == [r for r in cheaper if r.n_new_labels > 0]


def test_pareto_set_keeps_only_unbeaten_trials() -> None:
    rows = sweeps((100.0, 300.0, 1000.0))
    front = pareto_set(rows)
    for r in rows:
        beaten = any(f.practitioner_usd <= r.practitioner_usd and f.score > r.score for f in front)
        assert beaten or r in front
    assert [f.practitioner_usd for f in front] == sorted(f.practitioner_usd for f in front)
