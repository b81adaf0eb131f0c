"""The landscape posterior (sweep/decide/posterior.py, prior.py, costs.py, misfit.py): what a
share buys within the task's data, the leave-one-out rule, what counts as evidence, and the
answer's range and regret."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.standins import ReplayTable
from sweep.decide import misfit, posterior, prior
from sweep.decide.costs import Costs
from tests.sweep_tests.test_plan import _row

FEVER = PAPER_COST_MODELS["fever"]


def _fever() -> prior.Known:
    return prior.Known("fever", ReplayTable.from_csv(prior.LANDSCAPES / "fever.csv"))


def test_a_grid_is_read_vectorised_exactly_as_a_replay_reads_it() -> None:
    rng = np.random.default_rng(0)
    labelled = np.floor(np.exp(rng.uniform(0, 11, 300)))
    unlabelled = np.where(rng.random(300) < 0.2, 0, np.floor(np.exp(rng.uniform(0, 12, 300))))
    for known in prior.shipped():
        pairs = zip(labelled, unlabelled, strict=True)
        expected = [known.table.score(int(n), int(u)) for n, u in pairs]
        assert known.scores(labelled, unlabelled) == pytest.approx(expected, abs=1e-12)
        # Inside the grid nothing is beyond its range; outside, how far is counted in logs.
        first = known.table.labelled[0]
        assert known.beyond(np.array([float(first)]), np.array([0.0]))[0] == 0.0
        assert known.beyond(np.array([first / math.e]), np.array([0.0]))[0] == pytest.approx(1.0)


def test_buys_never_exceed_the_training_split_and_a_share_that_cannot_spend_is_flagged() -> None:
    rows = 5000
    costs = Costs.from_model(FEVER, 0.129, pool_cap=None, train_rows=rows)
    buys = costs.buys(300.0, 100)
    assert buys.labelled.max() <= rows
    assert np.all(buys.unlabelled <= rows - buys.labelled)
    # Distilling the whole pool costs a few dollars: most shares cannot spend $300.
    spent = buys.spends
    assert spent[0] and not spent[-1] and not spent.all()
    tolerance = 0.129 + 0.01 * 300
    assert np.all(300 - buys.spent_usd[spent] <= tolerance + 1e-9)
    assert np.all(300 - buys.spent_usd[~spent] > tolerance)
    # At $1000 even annotating only would want 7,751 labels of the 5,000 rows: no share
    # spends B, and the answer says so.
    big = costs.buys(1000.0, 100)
    assert big.labelled[0] == rows and not big.spends.any()
    ans = posterior.answer(posterior.update(prior.hypotheses(prior.shipped())), big)
    assert not ans.spends_budget and ans.spent_usd < 1000 - 100


def test_the_answer_spends_b_and_lies_inside_its_own_range() -> None:
    costs = Costs.from_model(FEVER, 0.129, pool_cap=640, train_rows=5000)
    buys = costs.buys(30.0, 100)
    post = posterior.update(prior.hypotheses(prior.shipped()))
    ans = posterior.answer(post, buys)
    index = round(ans.compute_fraction * 100)
    assert buys.spends[index]
    assert 30.0 - ans.spent_usd <= 0.129 + 0.3 + 1e-9
    low, high = ans.fraction_interval
    assert low <= ans.compute_fraction <= high
    assert not ans.scored and ans.expected_regret >= 0


def test_leave_one_out_by_near_content_and_by_name(tmp_path: Path) -> None:
    # A copy rounded to 2 decimals (every score within 0.01) is the same landscape.
    source = prior.LANDSCAPES / "fever.csv"
    lines = source.read_text().splitlines()
    rounded = [lines[0]] + [
        ",".join([*line.split(",")[:3], f"{float(line.split(',')[3]):.2f}"]) for line in lines[1:]
    ]
    copy = tmp_path / "renamed.csv"
    copy.write_text("\n".join(rounded) + "\n")
    table = ReplayTable.from_csv(copy)
    assert table.scores != _fever().table.scores  # not equal: near
    names = [k.name for k in prior.shipped(exclude=table)]
    assert "fever" not in names and len(names) == len(prior.shipped()) - 1
    # By name too, whatever the content.
    assert "nq" not in [k.name for k in prior.shipped(exclude_name="nq")]
    # A landscape 2 points away everywhere is another landscape.
    shifted = dataclasses.replace(
        table, scores={k: v + 0.02 for k, v in _fever().table.scores.items()}
    )
    assert "fever" in [k.name for k in prior.shipped(exclude=shifted)]


def test_a_trial_that_learned_nothing_is_no_evidence() -> None:
    known = _fever()
    learned = _row(known, 500, 10000, "learned")
    constant = dataclasses.replace(_row(known, 1000, 0, "constant"), degenerate="student")
    seen = posterior.observations([learned, constant])
    assert [(o.n_labelled, o.n_unlabelled) for o in seen] == [(500, 10000)]
    hyps = prior.hypotheses(prior.shipped(exclude=known.table))
    with_it = posterior.update(hyps, posterior.observations([learned, constant]))
    without = posterior.update(hyps, posterior.observations([learned]))
    assert with_it.weights == pytest.approx(without.weights)


def test_evidence_is_weighed_by_its_own_noise() -> None:
    hyps = prior.hypotheses(prior.shipped(exclude=_fever().table))
    points = [(500, 10000, 0.672), (5000, 0, 0.672), (100, 0, 0.503)]
    sure = posterior.update(hyps, [posterior.Observation(n, u, s, 0.003) for n, u, s in points])
    loose = posterior.update(hyps, [posterior.Observation(n, u, s, 0.2) for n, u, s in points])
    # Noisy scores move the weights less from the prior's (uniform) than precise ones.
    uniform = np.full(len(hyps), 1 / len(hyps))
    assert np.abs(loose.weights - uniform).sum() < np.abs(sure.weights - uniform).sum()
    # A 90 % interval [0.60, 0.70] is an SD of 0.0304; none is the default.
    assert posterior.noise_sd(0.60, 0.70) == pytest.approx(0.1 / 3.2898, rel=1e-4)
    assert posterior.noise_sd(None, None) == posterior.NOISE_SD
    assert posterior.noise_sd(0.5, 0.5) == posterior.NOISE_FLOOR


def test_observations_pin_the_level_and_the_prediction_near_them() -> None:
    known = _fever()
    hyps = prior.hypotheses(prior.shipped(exclude=known.table))
    seen = [(1000, 10000), (5000, 0), (500, 0), (10000, 100000)]
    obs = [posterior.Observation(n, u, known.table.score(n, u), 0.005) for n, u in seen]
    post = posterior.update(hyps, obs)
    at = post.expected(np.array([1000.0, 5000.0]), np.array([10000.0, 0.0]))
    assert at == pytest.approx(
        [known.table.score(1000, 10000), known.table.score(5000, 0)], abs=0.01
    )


@pytest.mark.slow
def test_the_shipped_misfit_is_calibrated_leave_one_grid_out() -> None:
    """What the fit chose still prints the regret it realizes (within 1.5 x) on the shipped
    landscapes, each judged from the others, and its range holds the best share in 85 % of
    the cases at a mean width of at most 0.5."""
    found = misfit.calibration(posterior.MISFIT)
    assert found.printed / found.realized == pytest.approx(1.0, abs=0.5)
    assert found.held >= 0.85 * found.n and found.width <= 0.5
