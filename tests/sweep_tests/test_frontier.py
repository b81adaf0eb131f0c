"""The learning-curve model on curves whose optimum is known: it must find it, say how sure it
is, and refuse to answer from too few trials."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.decide.costs import FRACTIONS, Costs, NotEnoughTrials, fit_costs
from sweep.decide.frontier import Curve, fit, holdout, recommend
from sweep.tracking.results import TrialRow, pareto_set, priced_like

TRUE = Curve(a=0.92, b=1.2, alpha=0.45, g=0.06, k=300.0)
COSTS = Costs(0.364, 75.0, 0.05, 0.0115, 0.0015, None)
SEED_LABELS = 30


def trial(budget: float, fraction_index: int, score: float, sweep: str = "syn") -> TrialRow:
    labelled, unlabelled, spent = COSTS.buys(budget, SEED_LABELS)
    n_new = int(labelled[fraction_index]) - SEED_LABELS
    compute = float(spent[fraction_index]) - n_new * COSTS.usd_per_label
    return TrialRow(
        run_id=f"{budget}-{fraction_index}-{score}",
        sweep=sweep,
        task="t",
        budget_usd=budget,
        n_seed_labels=SEED_LABELS,
        compute_fraction=float(FRACTIONS[fraction_index]),
        strategy="annotate" if fraction_index == 0 else "mixed",
        score=score,
        score_std=0.0,
        n_seeds=1,
        n_new_labels=n_new,
        n_unlabelled=float(unlabelled[fraction_index]),
        device_hours=compute / COSTS.usd_per_device_hour,
        practitioner_usd=float(spent[fraction_index]),
        sweep_spent_usd=0.0,
        trial_number=None,
        start_time_ms=0,
        n_labels_used=int(labelled[fraction_index]),
        annotation_usd=n_new * COSTS.usd_per_label,
        compute_usd=float(FRACTIONS[fraction_index]) * budget,
        compute_spent_usd=compute,
    )


def sampled_trials(
    budgets: tuple[float, ...], per_budget: int, noise: float, seed: int = 1
) -> list[TrialRow]:
    """Trials at random compute shares (plus the baseline) scored by the true curve."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        labelled, unlabelled, _ = COSTS.buys(budget, SEED_LABELS)
        for index in [0, *rng.integers(1, len(FRACTIONS), per_budget - 1)]:
            score = float(TRUE.predict(labelled[index], unlabelled[index])) + rng.normal(0, noise)
            rows.append(trial(budget, int(index), score))
    return rows


def true_best(budget: float) -> tuple[float, float]:
    labelled, unlabelled, _ = COSTS.buys(budget, SEED_LABELS)
    scores = TRUE.predict(labelled, unlabelled)
    return float(FRACTIONS[int(np.argmax(scores))]), float(scores.max())


@pytest.mark.parametrize("budget", [6.0, 12.0])
def test_recovers_the_known_optimum_at_a_budget_it_never_saw(budget: float) -> None:
    model = fit(sampled_trials((4.0, 8.0, 16.0), 6, noise=0.003), "t")
    rec = recommend(model, budget)
    best_fraction, best_score = true_best(budget)
    labelled, unlabelled, _ = COSTS.buys(budget, SEED_LABELS)
    true_at_rec = float(TRUE.predict(labelled, unlabelled)[round(rec.compute_fraction * 200)])
    assert abs(rec.compute_fraction - best_fraction) <= 0.06
    assert best_score - true_at_rec < 0.002  # the recommended split is as good as the best
    assert abs(rec.score - best_score) < 0.006
    assert rec.score_interval[0] - 0.003 <= best_score <= rec.score_interval[1] + 0.003
    assert rec.inside and rec.why_outside == ""
    assert rec.spent_usd <= budget + 1e-9
    assert rec.n_labels == SEED_LABELS + rec.n_new_labels


def test_noise_free_curve_is_fitted_exactly_and_costs_are_read_off_the_trials() -> None:
    model = fit(sampled_trials((4.0, 8.0, 16.0), 6, noise=0.0), "t")
    assert model.held_out.mae < 1e-3 < model.held_out.baseline_mae
    labelled, unlabelled, _ = COSTS.buys(10.0, SEED_LABELS)
    assert (
        np.abs(model.curve.predict(labelled, unlabelled) - TRUE.predict(labelled, unlabelled)).max()
        < 2e-3
    )
    costs = model.costs
    assert costs.usd_per_label == pytest.approx(0.364)
    assert costs.usd_per_device_hour == pytest.approx(75.0)
    assert costs.usd_per_unlabelled == pytest.approx(0.0015, rel=1e-3)
    assert costs.teacher_usd + costs.usd_per_labelled * 40 == pytest.approx(
        0.05 + 0.0115 * 40, rel=1e-3
    )
    assert model.seed_labels == SEED_LABELS and model.n_trials == 18


def test_extrapolation_is_flagged_and_less_certain() -> None:
    model = fit(sampled_trials((4.0, 8.0, 16.0), 6, noise=0.003), "t")
    inside, outside = recommend(model, 8.0), recommend(model, 60.0)
    assert inside.inside and not outside.inside
    assert "budget outside the trials' $4-$16" in outside.why_outside
    width = lambda r: r.score_interval[1] - r.score_interval[0]  # noqa: E731
    assert width(outside) > width(inside)


def test_a_prediction_never_passes_the_best_score_reached_by_more_than_its_interval() -> None:
    import dataclasses

    model = fit(sampled_trials((4.0, 8.0, 16.0), 6, noise=0.003), "t")
    assert model.best_seen == pytest.approx(
        max(r.score for r in sampled_trials((4.0, 8.0, 16.0), 6, 0.003))
    )
    free = recommend(model, 8.0)
    low_ceiling = dataclasses.replace(model, best_seen=free.score - 0.05)
    capped = recommend(low_ceiling, 8.0)
    above = free.score_interval[1] - free.score
    assert capped.score == pytest.approx(low_ceiling.best_seen + above)
    assert capped.score_interval[0] <= capped.score == capped.score_interval[1]
    assert not capped.inside and "capped there" in capped.why_outside


def test_held_out_budget_compares_predictions_with_measurements() -> None:
    rows = sampled_trials((4.0, 8.0, 12.0, 16.0), 6, noise=0.003)
    check = holdout(rows, "t", 12.0)
    assert len(check.rows) == 6
    for _, predicted, measured in check.rows:
        assert abs(predicted - measured) < 0.02
    assert check.recommended.budget_usd == 12.0
    with pytest.raises(ValueError, match="no trials at that budget; budgets with trials: 4, 8"):
        holdout(rows, "t", 5.0)


def test_too_few_trials_says_what_to_run() -> None:
    rows = sampled_trials((8.0,), 5, noise=0.0)
    with pytest.raises(NotEnoughTrials, match="5 finished trials .* need at least 8 trials"):
        fit(rows, "t")
    one_budget = sampled_trials((8.0,), 12, noise=0.0)
    few_labels = [
        r for r in one_budget if r.n_labels_used in {r.n_labels_used for r in one_budget[:2]}
    ]
    with pytest.raises(NotEnoughTrials, match="sweep grid"):
        fit(few_labels * 4, "t")


def test_pool_cap_is_read_from_trials_that_left_compute_money_unspent() -> None:
    rows = sampled_trials((4.0, 8.0), 5, noise=0.0)
    assert fit_costs(rows).pool_cap is None
    capped = [
        r
        if r.n_unlabelled == 0
        else TrialRow(
            **{
                **r.__dict__,
                "n_unlabelled": min(r.n_unlabelled, 500.0),
                "compute_spent_usd": min(r.compute_spent_usd, 1.0),
                "device_hours": min(r.compute_spent_usd, 1.0) / 75.0,
            }
        )
        for r in rows
    ]
    assert fit_costs(capped).pool_cap == 500.0


def test_mixed_prices_are_refused() -> None:
    rows = sampled_trials((4.0, 8.0), 5, noise=0.0)
    cheaper = [TrialRow(**{**r.__dict__, "annotation_usd": r.annotation_usd / 2}) for r in rows[:3]]
    with pytest.raises(ValueError, match="priced differently .* --sweep NAME"):
        fit_costs(cheaper + rows[3:])
    # `sweep plan` keeps the trials priced like itself.
    price = rows[3].annotation_usd / rows[3].n_new_labels
    kept, other = priced_like(cheaper + rows[3:], price, 75.0)
    assert kept == rows[3:] and other == [r for r in cheaper if r.n_new_labels > 0]
    assert priced_like(rows, price, 3.0)[1] == [r for r in rows if r.n_unlabelled > 0]
    fit_costs(kept)


def test_pareto_set_keeps_only_unbeaten_trials() -> None:
    rows = sampled_trials((4.0, 8.0, 16.0), 6, noise=0.003)
    front = pareto_set(rows)
    for r in rows:
        beaten = any(f.practitioner_usd <= r.practitioner_usd and f.score > r.score for f in front)
        assert beaten or r in front
    assert [f.practitioner_usd for f in front] == sorted(f.practitioner_usd for f in front)
