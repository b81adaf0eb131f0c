"""`sweep grid`'s config: each point's compute allowance under its own name
(`compute_allowance_usd`), never under `budget_usd`, from the command line, a config file, or
a stored sweep; no Ray is started."""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
import pytest

from objectives.trial_config import trial_config
from sweep import config
from sweep.cli import main as cli
from sweep.cli import options
from sweep.config.modes import Grid
from sweep.engine.trainable import point_fields

GRID = ["grid", "--task", "fever", "--objective", "synthetic"]
POINTS = ["--labels", "100,1000", "--unlabelled", "0,3000"]
FEVER_USD_PER_LABEL = 0.129


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args([*argv, "--root", str(tmp_path)])


def test_a_grid_records_its_allowance_under_its_own_name(tmp_path: Path) -> None:
    cfg = options.grid_config(_args(tmp_path, *GRID, *POINTS, "--compute-allowance", "500"))
    assert cfg.mode == Grid([100, 1000], [0, 3000], 500.0)
    assert cfg.budget_usd == 0.0  # no sweep-wide budget: each point has its own
    stored = cfg.to_dict()  # what the study keeps, and the parent run's params
    assert stored["compute_allowance_usd"] == 500.0 and stored["budget_usd"] == 0.0
    # A point with unlabelled examples: its labels plus the allowance, compute's share of it.
    distil = point_fields(cfg, {"n_labels": 100, "n_unlabelled": 3000}, seed=0)
    assert distil["budget_usd"] == pytest.approx(100 * FEVER_USD_PER_LABEL + 500.0)
    assert distil["budget_usd"] != cfg.compute_allowance_usd
    assert distil["compute_fraction"] == pytest.approx(500.0 / distil["budget_usd"])
    trial = trial_config(distil, cfg.preset)
    allocation = trial.allocation(trial.task_spec())
    assert (allocation.n_new_labels, allocation.compute_usd) == (100, 500.0)
    # Without unlabelled examples there is nothing to distil: the labels are the budget.
    annotate = point_fields(cfg, {"n_labels": 1000, "n_unlabelled": 0}, seed=0)
    assert annotate["budget_usd"] == pytest.approx(1000 * FEVER_USD_PER_LABEL)
    assert annotate["compute_fraction"] == 0.0


def test_the_allowance_defaults_and_comes_from_a_config_file_too(tmp_path: Path) -> None:
    cfg = options.grid_config(_args(tmp_path, *GRID, *POINTS))
    assert cfg.compute_allowance_usd == config.DEFAULT_COMPUTE_ALLOWANCE_USD == 1000.0
    file = tmp_path / "grid.toml"
    file.write_text("compute_allowance = 250\n")
    from_file = options.grid_config(_args(tmp_path, *GRID, *POINTS, "--config", str(file)))
    assert from_file.compute_allowance_usd == 250.0
    given = ["--config", str(file), "--compute-allowance", "300"]
    assert options.grid_config(_args(tmp_path, *GRID, *POINTS, *given)).compute_allowance_usd == (
        300.0
    )


def test_budget_and_allowance_each_belong_to_one_mode() -> None:
    grid = {"name": "g", "task": "fever", "n_seed_labels": 0, "n_trials": 1}
    grid |= {"grid_labels": [100], "grid_unlabelled": [0]}
    with pytest.raises(ValueError, match="a grid takes no budget"):
        config.SweepConfig(**grid, budget_usd=500.0, compute_allowance_usd=500.0)
    with pytest.raises(ValueError, match="compute_allowance_usd > 0"):
        config.SweepConfig(**grid, budget_usd=0.0)
    with pytest.raises(ValueError, match="compute_allowance_usd is a grid's"):
        config.SweepConfig(
            name="b",
            task="fever",
            budget_usd=30.0,
            n_seed_labels=0,
            n_trials=1,
            compute_allowance_usd=500.0,
        )


def test_a_bad_allowance_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*GRID, *POINTS, "--compute-allowance", "-5", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compute_allowance_usd=-5.0" in err[0], err
    assert not (tmp_path / "optuna.db").exists()


def test_a_grid_stored_with_its_allowance_as_budget_resumes_with_it(tmp_path: Path) -> None:
    """Grids created before `compute_allowance_usd` existed kept the allowance under
    `budget_usd`; resuming one reads it as the allowance."""
    new = options.grid_config(_args(tmp_path, *GRID, *POINTS, "--compute-allowance", "500"))
    old = new.to_dict()
    old["budget_usd"] = old.pop("compute_allowance_usd")
    study = optuna.create_study(study_name="fever-grid", storage=new.optuna_storage)
    study.set_user_attr("sweep_config", old)
    resume = [*GRID, "--name", "fever-grid", "--resume"]
    cfg = options.grid_config(_args(tmp_path, *resume))
    assert (cfg.compute_allowance_usd, cfg.budget_usd) == (500.0, 0.0)
    assert cfg.grid_labels == [100, 1000] and cfg.grid_unlabelled == [0, 3000]
    assert options.grid_config(_args(tmp_path, *resume, "--compute-allowance", "500")) == cfg
    with pytest.raises(ValueError, match="compute_allowance_usd=700.0 but the sweep"):
        options.grid_config(_args(tmp_path, *resume, "--compute-allowance", "700"))
