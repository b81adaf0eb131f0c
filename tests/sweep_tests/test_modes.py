"""A sweep's mode owns what differs by mode: the budget of a trial, its fields, its run's
name, what Optuna walks or searches, the first points and the points that must be measured."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sweep.config import SweepConfig
from sweep.config.modes import BudgetRange, BudgetSearch, Grid
from sweep.engine.tuner import NumberedSpace, first_points, make_sampler
from tests.sweep_tests.conftest import synthetic_config


def _grid(tmp_path: Path) -> SweepConfig:
    return synthetic_config(
        tmp_path,
        budget_usd=0.0,
        n_seed_labels=0,
        grid_labels=[100, 500],
        grid_unlabelled=[0, 1000],
        compute_allowance_usd=20.0,
    )


def test_the_config_derives_its_mode_from_its_fields(tmp_path: Path) -> None:
    assert synthetic_config(tmp_path).mode == BudgetSearch()
    ranged = synthetic_config(tmp_path, budget_range=[10.0, 100.0])
    assert ranged.mode == BudgetRange(10.0, 100.0) and ranged.multi_objective
    assert _grid(tmp_path).mode == Grid([100, 500], [0, 1000], 20.0)


def test_a_grid_point_buys_its_labels_and_spends_its_allowance_only_when_distilling() -> None:
    grid = Grid([100], [0, 1000], 20.0)
    assert grid.trial_budget_usd({"n_labels": 100, "n_unlabelled": 0}, 0.0, 0.1) == 10.0
    distil = {"n_labels": 100, "n_unlabelled": 1000}
    assert grid.trial_budget_usd(distil, 0.0, 0.1) == 30.0
    assert grid.point_fields(distil, 30.0) == {
        "n_labels": 100,
        "compute_fraction": pytest.approx(20.0 / 30.0),
        "max_unlabelled": 1000,
    }
    assert grid.run_name("fever", distil, "unused") == "fever/L=100/U=1000"
    assert grid.sweep_params({"budget_usd": 0.0, "name": "g"}) == {"name": "g"}
    assert len(grid.planned_points()) == 2 and grid.first_point(0.5) is None


def test_a_budget_search_keeps_the_sweeps_budget_and_a_range_samples_one() -> None:
    assert BudgetSearch().trial_budget_usd({}, 30.0, 0.1) == 30.0
    assert BudgetRange(10.0, 100.0).trial_budget_usd({"budget_usd": 42.0}, 10.0, 0.1) == 42.0
    assert BudgetRange(10.0, 100.0).first_point(0.5) == {
        "compute_fraction": 0.5,
        "budget_usd": 10.0,
    }
    assert BudgetSearch().planned_points() == [] and BudgetSearch().optuna_grid() is None


def test_the_engine_asks_the_mode_for_its_sampler_space_and_first_points(tmp_path: Path) -> None:
    grid = _grid(tmp_path)
    assert isinstance(make_sampler(grid, 0), optuna.samplers.GridSampler)
    assert first_points(grid) == []
    study = optuna.create_study()
    point = NumberedSpace(grid)(study.ask())
    assert set(point) == {"optuna_trial_number"}  # the grid's parameters are Optuna's own
    ranged = synthetic_config(tmp_path, budget_range=[10.0, 100.0])
    trial = study.ask()
    NumberedSpace(ranged)(trial)
    assert 10.0 <= trial.params["budget_usd"] <= 100.0 and "compute_fraction" in trial.params
    assert all(p["budget_usd"] == 10.0 for p in first_points(ranged))
