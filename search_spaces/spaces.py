"""Search spaces as define-by-run functions over an Optuna-like trial.

A space only calls `suggest_*` on the trial it is given (an Optuna trial, Ray's captor of
one, or a test double), so this package imports neither Optuna nor Ray. Parameter names
are the TrialConfig field names: one name from Optuna to Ray's config to MLflow's params.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class TrialLike(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


Space = Callable[[TrialLike], dict[str, Any]]

# The paper's grid spacing of compute shares, 0 (annotate only) to 1 (distill only).
PAPER_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

# Around the paper's T = 2 (hard-coded in its code). Below 1 was tried on FEVER and did not
# help across seeds (bench/README.md, note 9).
TEMPERATURE_RANGE = (1.0, 8.0)

# TrialConfig fields a space searches besides the share: a sampled value becomes the trial's
# field, and one the user set (`--temperature`) is pinned instead of searched.
SEARCHED_FIELDS = ("temperature",)


def distill_or_annotate(trial: TrialLike) -> dict[str, Any]:
    """The default space: the compute share in [0, 1], and the distillation temperature
    whenever some money goes to compute.

    `f == 0` (annotate only, the paper's baseline) is a point a continuous suggestion never
    hits; the default sampler places it itself and the others' sweeps enqueue it (see
    `FIRST_SHARES`), instead of giving it a branch of its own, which a sampler would keep
    suggesting although it has nothing left to tune.
    """
    if trial.suggest_float("compute_fraction", 0.0, 1.0) > 0:
        trial.suggest_float("temperature", *TEMPERATURE_RANGE, log=True)
    return {}


# The shares a new `--sampler tpe` (gp, random) sweep measures first, in this order:
# annotate only and distill only (the paper's two pure strategies), then the even mix. They
# bracket a score curve that rises and falls once in the share, so the sampler starts from
# its ends and middle (bench/search_efficiency.py measures it as "today's default").
FIRST_SHARES = (0.0, 1.0, 0.5)


def fraction_only(trial: TrialLike) -> dict[str, Any]:
    """Only the compute share, continuous in [0, 1]: for random search and simple studies."""
    trial.suggest_float("compute_fraction", 0.0, 1.0)
    return {}


def fraction_grid(trial: TrialLike) -> dict[str, Any]:
    """The compute share on the paper's grid (used with a grid sampler)."""
    trial.suggest_categorical("compute_fraction", list(PAPER_FRACTIONS))
    return {}


SPACES: dict[str, Space] = {
    "distill_or_annotate": distill_or_annotate,
    "fraction_only": fraction_only,
    "fraction_grid": fraction_grid,
}


def get_space(name: str) -> Space:
    if name not in SPACES:
        raise ValueError(f"Unknown search space={name!r}; valid: {', '.join(SPACES)}.")
    return SPACES[name]
