"""The sweep's default sampler (sweep/engine/sampler.py): the posterior's answer first,
annotate only second, Thompson draws after; rebuilt from the study on resume; a real sweep
through Ray Tune starts where the prior says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.standins import ReplayTable
from search_spaces import get_space
from sweep.decide import posterior, prior
from sweep.decide.costs import Costs
from sweep.engine.sampler import PosteriorSampler, StudyEvidence

FEVER = PAPER_COST_MODELS["fever"]
COSTS = Costs.from_model(FEVER, 0.129, pool_cap=100000)
TRUTH = ReplayTable.from_csv(prior.LANDSCAPES / "fever.csv")
HYPS = prior.hypotheses(prior.shipped(exclude=TRUTH))


def _sampler(n_trials: int = 6, seed: int = 0) -> tuple[PosteriorSampler, StudyEvidence]:
    evidence = StudyEvidence(COSTS, 300.0, 100, 0.01)
    sampler = PosteriorSampler(
        HYPS, evidence, 300.0, 100, n_trials, seed=seed, defaults={"temperature": 2.0}
    )
    return sampler, evidence


def _score(share: float) -> float:
    buys = COSTS.buys(300.0, 100, np.array([share]))
    return TRUTH.score(int(buys.labelled[0]), int(buys.unlabelled[0]))


def _run(study: optuna.Study, n: int) -> list[float]:
    space = get_space("distill_or_annotate")
    shares = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        shares.append(float(trial.params["compute_fraction"]))
        study.tell(trial, _score(shares[-1]))
    return shares


def test_the_first_trial_is_the_posteriors_answer_and_the_second_annotates_only() -> None:
    sampler, _ = _sampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    shares = _run(study, 4)
    prior_answer = posterior.answer(posterior.update(HYPS), COSTS.buys(300.0, 100))
    assert shares[0] == prior_answer.compute_fraction
    assert shares[1] == 0.0
    assert all(0 < f <= 1 for f in shares[2:])
    # The first distilling trials take the configured temperature, not a random one.
    assert study.trials[0].params["temperature"] == 2.0


def test_a_resumed_study_rebuilds_the_same_posterior_and_repeats_no_draw(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    first = optuna.create_study(direction="maximize", sampler=_sampler()[0], storage=storage,
                                study_name="s")  # fmt: skip
    _run(first, 3)
    # A new driver, a new sampler: the study's trials are all it knows.
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=_sampler()[0])
    _, evidence = _sampler()
    before = posterior.update(HYPS, evidence(first)[0])
    after = posterior.update(HYPS, evidence(resumed)[0])
    assert after.weights == pytest.approx(before.weights)
    more = _run(resumed, 2)
    # The same as a study that never stopped (draws are seeded by the trial's number).
    straight = optuna.create_study(direction="maximize", sampler=_sampler()[0])
    assert _run(straight, 5)[3:] == more


def test_trials_in_flight_each_get_their_own_share() -> None:
    sampler, _ = _sampler(n_trials=8)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = get_space("distill_or_annotate")
    asked = [study.ask() for _ in range(3)]  # three at once: nothing finished yet
    for trial in asked:
        space(trial)
    shares = [t.params["compute_fraction"] for t in asked]
    assert shares[1] == 0.0 and shares[0] != shares[2]


def test_no_share_is_measured_twice() -> None:
    """A trial repeated with its seed repeats its score: the draws avoid measured shares."""
    sampler, _ = _sampler(n_trials=10)
    shares = _run(optuna.create_study(direction="maximize", sampler=sampler), 10)
    assert all(abs(a - b) >= 0.02 for i, a in enumerate(shares) for b in shares[i + 1 :])


def test_a_searched_budget_is_read_at_the_trials_own_budget() -> None:
    sampler, _ = _sampler()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    trial = study.ask()
    budget = trial.suggest_float("budget_usd", 100.0, 1000.0, log=True)
    share = trial.suggest_float("compute_fraction", 0.0, 1.0)
    expected = posterior.answer(posterior.update(HYPS), COSTS.buys(budget, 100))
    assert share == expected.compute_fraction


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_real_sweep_starts_from_the_prior_and_best_reports_the_posterior(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    table = tmp_path / "fever_copy.csv"
    table.write_text((prior.LANDSCAPES / "fever.csv").read_text())
    args = ["run", "--task", "fever", "--budget", "300", "--seed-labels", "100",
            "--objective", "replay", "--replay-table", str(table), "--trials", "3",
            "--root", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials

    rows = finished_trials(Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}"), "fever")
    first = min(rows, key=lambda r: r.trial_number or 0)
    costs = Costs.from_model(TRUTH.cost, 0.129, max(TRUTH.unlabelled))
    expected = posterior.answer(posterior.update(prior.hypotheses(prior.shipped())),
                                costs.buys(300.0, 100))  # fmt: skip
    assert first.compute_fraction == expected.compute_fraction
    assert sorted(r.compute_fraction for r in rows)[0] == 0.0
    capsys.readouterr()
    assert main(["best", "--task", "fever", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the posterior's answer" in out and "of $300" in out
    assert main(["best", "--task", "fever", "--root", str(tmp_path), "--json"]) == 0
    import json

    (best,) = json.loads(capsys.readouterr().out)
    answer: dict[str, Any] = best["posterior"]
    low, high = answer["fraction_interval"]
    assert low <= answer["compute_fraction"] <= high
    assert 300 - answer["spent_usd"] <= 0.129 + 3.0 + 1e-6


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_the_demos_answer_spends_its_budget(tmp_path: Path) -> None:
    """The demo's setting (BBC News, $8, 30 seed labels, a pool of 640) on the grid measured
    for it: its answer is a share whose money the pool can absorb, and it says so."""
    import dataclasses

    from sweep.cli.demo import demo_config
    from sweep.cli.queries import answer_line
    from sweep.engine.tuner import run_sweep

    grid = Path(__file__).resolve().parents[2] / "bench" / "data" / "bbc_news_grid.csv"
    cfg = dataclasses.replace(
        demo_config(str(tmp_path), n_trials=3), objective="replay", replay_table=str(grid)
    )
    summary = run_sweep(cfg)
    line = answer_line(summary.tracking_uri, cfg.task, cfg.budget_usd, cfg.name)
    spent = float(line.split(" spent;")[0].split("$")[-2].split(" of ")[0])
    assert 8.0 - spent <= 0.364 + 0.08 + 1e-6, line
    assert "answer: spend" in line and "of $8 spent" in line
