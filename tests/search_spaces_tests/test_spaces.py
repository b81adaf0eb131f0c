import optuna
import pytest

from search_spaces import SPACES, distill_or_annotate, fraction_grid, fraction_only, get_space
from search_spaces.spaces import FIRST_SHARES, PAPER_FRACTIONS


def test_annotate_only_has_no_temperature() -> None:
    trial = optuna.trial.FixedTrial({"compute_fraction": FIRST_SHARES[0]})
    assert distill_or_annotate(trial) == {}
    assert trial.params == {"compute_fraction": 0.0}


def test_distillation_suggests_fraction_and_temperature() -> None:
    trial = optuna.trial.FixedTrial({"compute_fraction": 0.4, "temperature": 2.0})
    assert distill_or_annotate(trial) == {}
    assert trial.params == {"compute_fraction": 0.4, "temperature": 2.0}


def test_spaces_stay_in_range_under_a_real_study() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        assert distill_or_annotate(trial) == {}
        fraction = trial.params["compute_fraction"]
        assert 0.0 <= fraction <= 1.0
        assert ("temperature" in trial.params) == (fraction > 0)
        study.tell(trial, 0.0)


def test_fraction_spaces() -> None:
    trial = optuna.trial.FixedTrial({"compute_fraction": 0.25})
    assert fraction_only(trial) == {} and trial.params == {"compute_fraction": 0.25}
    grid = optuna.trial.FixedTrial({"compute_fraction": 0.3})
    fraction_grid(grid)
    assert PAPER_FRACTIONS[0] == 0.0 and PAPER_FRACTIONS[-1] == 1.0 and len(PAPER_FRACTIONS) == 11


def test_unknown_space_lists_the_valid_ones() -> None:
    assert set(SPACES) == {"distill_or_annotate", "fraction_only", "fraction_grid"}
    with pytest.raises(ValueError, match="space='tpe'; valid: distill_or_annotate"):
        get_space("tpe")
