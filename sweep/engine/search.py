"""What the study searches and in which order: the sampler (the landscape posterior's by
default; the others seeded past the trials a resumed sweep already has), the space with the
Optuna trial number, and the points a new sweep tries first (warm-start shares; with the
other samplers also annotate only and the first shares)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import optuna

from objectives.data import load_task_data
from objectives.standins import DEFAULT_COST_MODEL, ReplayTable
from objectives.trial_config import trial_config
from search_spaces import get_space
from search_spaces.spaces import FIRST_SHARES, PAPER_FRACTIONS, SEARCHED_FIELDS
from sweep.config import SweepConfig, store_path
from sweep.decide import prior
from sweep.decide.costs import Costs
from sweep.decide.evidence import recipe
from sweep.engine.sampler import PosteriorSampler, StoreEvidence
from sweep.engine.trainable import base_fields
from sweep.tracking.mlflow_store import flatten
from sweep.tracking.results import best_allocations


def make_sampler(cfg: SweepConfig, n_existing_trials: int) -> Any:
    """The sampler, seeded past the trials already in the study: a resumed sweep does not
    replay the startup configurations it already tried."""
    seed = cfg.sampler_seed + n_existing_trials
    grid = cfg.mode.optuna_grid()
    if grid is not None:  # every point once, whatever sampler was named
        return optuna.samplers.GridSampler(grid, seed=seed)
    if cfg.sampler == "posterior":
        # Ray warns when a define-by-run space takes over a second: this one reads the
        # store and the posterior, which is the point.
        warnings.filterwarnings("ignore", message="Define-by-run function passed")
        # Its draws are seeded by the trial's number: a resumed sweep repeats none.
        return _pinned(cfg, posterior_sampler(cfg, seed))
    # The first shares are enqueued (`first_points`); a few random ones after them do the
    # rest of the start-up (bench/search_efficiency.py: more only delayed the model).
    startup = max(3, min(5, cfg.n_trials // 4))
    return _pinned(cfg, _base_sampler(cfg, seed, startup - n_existing_trials))


def _pinned(cfg: SweepConfig, sampler: Any) -> Any:
    """What the user fixed (`--temperature`) is not searched: Optuna's own pinning."""
    pinned = {k: cfg.trial[k] for k in SEARCHED_FIELDS if k in cfg.trial}
    if not pinned:
        return sampler
    # A value outside the searched range is the user's choice, not a mistake to repeat.
    warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range")
    return optuna.samplers.PartialFixedSampler(pinned, sampler)


def sweep_costs(cfg: SweepConfig) -> tuple[Costs, bool]:
    """What a share of B buys in this sweep, and whether those prices are only a first guess
    to rescale to the trials (a meter that prices by time or FLOPs): the replay table's fitted
    model, else the task's cost model (without its fixed teacher cost under such a meter),
    bound by the recipe's pool and the training split's rows."""
    base = trial_config(base_fields(cfg, 0.0, 0), cfg.preset)
    spec = base.task_spec()
    price = base.prices(spec).label_price(cfg.task)
    if cfg.objective == "replay":
        table = ReplayTable.from_csv(str(cfg.replay_table))
        return Costs.from_model(table.cost, price, max(table.unlabelled)), False
    rows = len(load_task_data(spec, base.data_dir).train) if cfg.objective == "real" else None
    model = spec.cost_model or DEFAULT_COST_MODEL
    guess = cfg.objective == "real" and base.meter != "paper"
    if guess:
        model = dataclasses.replace(model, a_usd=0.0)
    pool = base.max_unlabelled if cfg.objective == "real" else None
    return Costs.from_model(model, price, pool, rows), guess


def posterior_sampler(cfg: SweepConfig, seed: int) -> PosteriorSampler:
    """The default sampler: the share from the posterior over the task's landscape (the
    shipped landscapes, updated by the store's trials of the task), the temperature from
    TPE after the configured one has served the first trials."""
    costs, rescale = sweep_costs(cfg)
    params = flatten(cfg.mode.sweep_params(cfg.to_dict()))
    evidence = StoreEvidence(cfg.tracking, cfg.task, recipe(params), costs, rescale)
    temperature = trial_config(base_fields(cfg, 0.0, 0), cfg.preset).temperature
    return PosteriorSampler(
        prior.hypotheses(prior.shipped()),
        evidence,
        cfg.mode.lowest_budget_usd(cfg.budget_usd),
        cfg.n_seed_labels,
        cfg.n_trials,
        seed=cfg.sampler_seed,
        defaults={"temperature": temperature},
        independent=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3),
    )


def _base_sampler(cfg: SweepConfig, seed: int, n_startup_trials: int) -> Any:
    n_startup_trials = max(0, n_startup_trials)
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=True,
            group=True,  # the space is conditional (temperature only when distilling)
            constant_liar=True,  # concurrent trials do not all ask for the same point
        )
    if cfg.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler({"compute_fraction": list(PAPER_FRACTIONS)}, seed=seed)


class NumberedSpace:
    """The sweep's space plus the Optuna trial number in the config (a picklable callable,
    since Tune checkpoints its searcher with pickle): what the mode suggests (a grid point,
    a budget), then the named space unless the mode's point is whole."""

    def __init__(self, cfg: SweepConfig) -> None:
        self.name = cfg.space_name
        self.mode = cfg.mode

    def __call__(self, trial: Any) -> dict[str, Any]:
        own = self.mode.suggest(trial)
        point = own if own is not None else get_space(self.name)(trial)
        return {**point, "optuna_trial_number": trial.number}


def first_points(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Points a new sweep tries before the sampler chooses: annotate only, then the best
    compute shares found on `cfg.warm_start` tasks (shares transfer across tasks better than
    raw label counts do), then the other FIRST_SHARES; at most `cfg.n_trials` of them. The
    posterior's sampler places annotate only and its first share itself: only warm-start
    shares are queued for it."""
    if cfg.mode.first_point(0.0) is None or cfg.sampler == "grid":
        return []
    own = cfg.sampler == "posterior"
    fractions: list[float] = [] if own else [FIRST_SHARES[0]]
    path = store_path(cfg.tracking)
    store_exists = path is None or path.is_file()  # never create a store just to read it
    for task in cfg.warm_start:
        rows = _best_of(cfg.tracking, task) if store_exists else []
        if not rows:
            raise ValueError(
                f"--warm-start {task!r}: no finished trials of that task in {cfg.tracking}; "
                "name a task with a finished sweep (see `sweep best`)."
            )
        fractions += rows
    fractions += [] if own else list(FIRST_SHARES[1:])
    out: list[dict[str, Any]] = []
    # A distilling first point takes the configured temperature (the user's, else the task's
    # measured recipe, else the preset's): the sampler has nothing better to go by yet.
    temperature = trial_config(base_fields(cfg, 0.0, 0), cfg.preset).temperature
    if cfg.space_name == "fraction_grid":  # a categorical space takes its own values only
        fractions = [min(PAPER_FRACTIONS, key=lambda g: abs(g - f)) for f in fractions]
    for fraction in list(dict.fromkeys(fractions))[: cfg.n_trials]:
        params: dict[str, Any] = dict(cfg.mode.first_point(fraction) or {})
        if fraction > 0 and cfg.space_name == "distill_or_annotate":
            params["temperature"] = temperature
        out.append(params)
    return out


def _best_of(tracking_uri: str, task: str) -> list[float]:
    return [r.compute_fraction for r in best_allocations(tracking_uri, task)]
