"""The sweep driver: Ray Tune runs the trials, Optuna decides, MLflow records.

A sweep is a loop of Tune rounds over one persistent Optuna study: each round asks for the
trials still missing, so failed trials are replaced and the study ends with exactly the
requested number of finished trials, and a resumed sweep (a new driver on the same study)
repeats nothing that finished. `run_sweep` reads as its phases: open (or resume), run the
rounds, summarise.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from cluster import check_reachable, ray_address
from objectives.budget import Budget, allocate
from objectives.meter import meter_cost_model
from objectives.trial_config import trial_config
from search_spaces import get_space
from search_spaces.spaces import FIRST_SHARES, PAPER_FRACTIONS, SEARCHED_FIELDS
from sweep.config import SweepConfig, check_writable, store_path
from sweep.engine.progress import last_line, systematic
from sweep.engine.ray_hooks import FailFast, Progress, SpendCap, SummaryRefresh
from sweep.engine.raystart import (
    RayStart,
    check_cluster_fits,
    cluster_profile,
    resolve_auto,
    restore_sigterm,
    sigterm_as_interrupt,
    trial_resources,
)
from sweep.engine.refresher import settle
from sweep.engine.spend import SpendLedger
from sweep.engine.trainable import Objective, base_fields, failed_usd_per_second, make_trainable
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import (
    MIXED_METRICS,
    objectives_of,
    optuna_storage,
    queue_missing_points,
    recover_stale_trials,
    study_exists,
    study_state,
)
from sweep.tracking.results import best_allocations
from sweep.tracking.schema import trial_spent_usd

logger = logging.getLogger(__name__)


# --- validation before anything is written ---------------------------------------------


def validate(cfg: SweepConfig) -> None:
    """Everything that can be checked before a file is written, with one clear error."""
    if cfg.mode.has_budget:  # a grid's points have theirs; SweepConfig checks its allowance
        Budget(cfg.budget_usd)
    base = trial_config(base_fields(cfg, 0.0, 0), cfg.preset)
    spec = base.task_spec()
    meter_cost_model(base.meter, spec, base.charge_student_training)  # --meter paper's needs
    if cfg.mode.has_budget:
        lowest = cfg.mode.lowest_budget_usd(cfg.budget_usd)
        annotate = allocate(spec.name, lowest, 0.0, base.prices(spec), cfg.n_seed_labels)
        if annotate.n_new_labels == 0:
            raise ValueError(
                f"budget_usd={lowest:g} buys no label at ${annotate.usd_per_label:g} per "
                f"label for {spec.name!r}; a sweep needs a budget of at least one label."
            )
    if cfg.objective == "real":
        from objectives.data import load_task_data

        data = load_task_data(spec, base.data_dir)
        labelled = cfg.mode.most_labels(cfg.n_seed_labels)
        if labelled > len(data.train):
            raise ValueError(
                f"`labels <= train pool size` must hold, but {labelled} labels were asked "
                f"for {spec.name!r}, whose pool has {len(data.train)} rows."
            )
    if cfg.objective == "replay":
        from objectives.standins import ReplayTable

        ReplayTable.from_csv(str(cfg.replay_table))
    get_space(cfg.space_name)
    check_writable(cfg.tracking, "--tracking-uri")
    check_writable(cfg.optuna_storage, "--storage")
    check_writable(str(Path(cfg.root).resolve() / "x"), "--root")
    check_reachable(resolve_auto(ray_address(cfg.address)))
    cluster_profile(cfg)  # refuses negative or zero resources before anything is written


def objective_for(cfg: SweepConfig) -> Objective:
    if cfg.objective == "synthetic":
        from objectives.standins import synthetic_trial

        return partial(synthetic_trial, work_seconds=cfg.standin_work_seconds)
    if cfg.objective == "replay":
        from objectives.standins import ReplayTable, replay_trial

        table = ReplayTable.from_csv(str(cfg.replay_table))
        return partial(replay_trial, table=table, work_seconds=cfg.standin_work_seconds)
    from objectives.distill_or_annotate import run_trial

    return run_trial


def make_sampler(cfg: SweepConfig, n_existing_trials: int) -> Any:
    """The sampler, seeded past the trials already in the study: a resumed sweep does not
    replay the startup configurations it already tried."""
    seed = cfg.sampler_seed + n_existing_trials
    grid = cfg.mode.optuna_grid()
    if grid is not None:  # every point once, whatever sampler was named
        return optuna.samplers.GridSampler(grid, seed=seed)
    # The first shares are enqueued (`first_points`); a few random ones after them do the
    # rest of the start-up (bench/search_efficiency.py: more only delayed the model).
    startup = max(3, min(5, cfg.n_trials // 4))
    pinned = {k: cfg.trial[k] for k in SEARCHED_FIELDS if k in cfg.trial}
    if pinned:  # what the user fixed (`--temperature`) is not searched: Optuna's own pinning
        # A value outside the searched range is the user's choice, not a mistake to repeat.
        warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range")
        return optuna.samplers.PartialFixedSampler(
            pinned, _base_sampler(cfg, seed, startup - n_existing_trials)
        )
    return _base_sampler(cfg, seed, startup - n_existing_trials)


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
    raw label counts do), then the other FIRST_SHARES; at most `cfg.n_trials` of them."""
    if cfg.mode.first_point(0.0) is None or cfg.sampler == "grid":
        return []
    fractions: list[float] = [FIRST_SHARES[0]]
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
    fractions += FIRST_SHARES[1:]
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


@dataclass(frozen=True)
class SweepSummary:
    name: str
    task: str
    budget_usd: float
    n_finished: int
    n_failed: int
    best_score: float | None
    best_params: Mapping[str, Any]
    parent_run_id: str
    tracking_uri: str
    failures: tuple[str, ...] = ()  # each failed trial's reason: exception type and message
    stopped: str = ""  # why the sweep ended before its trials were done (the spending cap)


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # A failed trial is reported in the progress line and its reason kept in MLflow
    # (doa.failure); Ray's own tracebacks of it would only bury that.
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Ctrl-C must stop the sweep, not just end one Tune round (the next round would start).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"


def _ray_trial_id(result: Any) -> str:
    """A result's Ray trial id: reported with its metrics, or in its folder's name
    (`trainable_<id>_<n>_...`) when the worker died before reporting anything."""
    reported = (result.metrics or {}).get("trial_id")
    if reported:
        return str(reported)
    parts = Path(str(result.path)).name.split("_")
    return parts[1] if len(parts) > 1 else ""


# --- the driver's phases ------------------------------------------------------------------


@dataclass
class _Session:
    """What the phases of one `run_sweep` call share."""

    cfg: SweepConfig
    tracker: Any
    experiment_id: str
    parent: str
    study: Any
    complete: int
    out: TextIO
    ledger: SpendLedger
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _open(cfg: SweepConfig, resume: bool, out: TextIO) -> _Session:
    """The study and the parent run, new or resumed (stale trials recovered)."""
    points = [] if resume else first_points(cfg)  # reads other tasks' results: before writing
    Path(cfg.root).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(cfg.tracking)
    experiment_id = tracker.experiment_id(cfg.task)
    parent = tracker.find_sweep_run(cfg.task, cfg.name) if resume else None
    if parent is not None:
        tracker.reopen(parent)
    params = cfg.mode.sweep_params(cfg.to_dict())
    parent = parent or tracker.start_sweep_run(cfg.task, cfg.name, params)
    study, complete = study_state(cfg)
    if not resume:
        study.set_user_attr("sweep_config", cfg.to_dict())
        for params in points:
            study.enqueue_trial(params, skip_if_exists=True)
    else:
        killed = tracker.close_stale_runs(parent, cfg.task)
        recovered = recover_stale_trials(study, tracker, cfg)
        study, complete = study_state(cfg)
        print(
            f"resuming {cfg.name}: {complete} finished trials kept ({recovered} recovered), "
            f"{killed} interrupted runs closed",
            file=out,
        )
    ledger = SpendLedger(cfg.max_spend_usd, failed_usd_per_second(cfg))
    # Failed and killed runs spent too (a failure logs its time's cost).
    for run in tracker.trial_runs(task=cfg.task, sweep=cfg.name, status=None) if resume else []:
        ledger.record(trial_spent_usd(run.data.metrics))
    return _Session(cfg, tracker, experiment_id, parent, study, complete, out, ledger)


def _tuner(session: _Session, trainable: Any) -> Any:
    """One Tune round: the missing trials, suggested by Optuna through the study."""
    cfg, study = session.cfg, session.study
    metrics, modes = objectives_of(cfg)
    searcher = OptunaSearch(
        space=NumberedSpace(cfg),
        metric=metrics if cfg.multi_objective else metrics[0],
        mode=modes if cfg.multi_objective else modes[0],
        sampler=make_sampler(cfg, len(study.trials)),
        study_name=cfg.name,
        storage=optuna_storage(cfg.optuna_storage),
    )
    halt = FailFast(session.complete)  # stops starting trials once failures are systematic
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(
                SpendCap(searcher, session.ledger, halt.halted), max_concurrent=cfg.concurrency
            ),
            num_samples=cfg.n_trials - session.complete,
            metric="score",
            mode="max",
            reuse_actors=True,
            scheduler=ASHAScheduler(grace_period=2, reduction_factor=3) if cfg.asha else None,
        ),
        run_config=tune.RunConfig(
            name=f"{cfg.name}-round{len(study.trials)}",
            storage_path=cfg.ray_storage,
            failure_config=tune.FailureConfig(max_failures=cfg.retries),
            verbose=0,
            callbacks=[
                halt,
                Progress(cfg.n_trials, study, session.out),
                # The answer in the MLflow descriptions and artifacts, kept current.
                SummaryRefresh(cfg.tracking, cfg.task, cfg.name, session.parent),
            ],
        ),
    )


def _close_failed_runs(session: _Session, results: list[Any]) -> None:
    """Runs whose process could not close them: a killed worker (FAILED, with Ray's error)
    or a trial the scheduler stopped early (KILLED); their reasons kept for the console."""
    errors = {
        _ray_trial_id(r): f"{type(r.error).__name__}: {r.error}"[:2000]
        for r in results
        if r.error is not None
    }
    session.failed += len(errors)
    session.failures += [last_line(error) for error in errors.values()]
    session.tracker.close_stale_runs(
        session.parent,
        session.cfg.task,
        errors,
        reason="ended without a result: its worker was lost (the trial was retried) "
        "or the scheduler stopped it early",
    )


def _run_rounds(session: _Session, objective: Objective, ray_start: RayStart) -> None:
    """Tune rounds until the trials are finished, replacing failed ones within an
    allowance; Ctrl-C or SIGTERM leaves nothing RUNNING."""
    cfg = session.cfg
    previous_sigterm = sigterm_as_interrupt()
    try:
        ray_start.wait()
        # ray.init (in RayStart's thread) installs a C++ SIGTERM handler that aborts the
        # driver; when it finished after the line above, that handler replaced ours.
        sigterm_as_interrupt()
        profile, resources = trial_resources(cfg)
        check_cluster_fits(profile)
        trainable = tune.with_resources(
            make_trainable(cfg, objective, session.experiment_id, session.parent), resources
        )
        max_failures = max(10, 2 * cfg.n_trials)
        while session.complete < cfg.n_trials:
            kind = systematic(session.failures) if session.complete == 0 else None
            if kind is not None:
                logger.warning(
                    "sweep %s: the first %d trials all failed with %s and none finished; "
                    "stopping (the error is not the trials' bad luck)",
                    cfg.name,
                    session.failed,
                    kind,
                )
                break
            if session.failed > max_failures:
                logger.warning(
                    "sweep %s: stopping after %d failed trials (allowance %d)",
                    cfg.name,
                    session.failed,
                    max_failures,
                )
                break
            queue_missing_points(session.study, cfg)
            grid = _tuner(session, trainable).fit()
            _close_failed_runs(session, [grid[i] for i in range(len(grid))])
            session.study, session.complete = study_state(cfg)
            if any(MIXED_METRICS in reason for reason in session.failures):
                break  # every later trial would be scored with the other metric too
            if session.ledger.stopped:
                print(f"sweep {cfg.name}: {session.ledger.describe()}", file=session.out)
                break
    except KeyboardInterrupt:
        # In-flight runs are closed as KILLED, and their Optuna trials failed (or completed,
        # where the result had already been logged).
        session.tracker.close_stale_runs(session.parent, cfg.task)
        recover_stale_trials(session.study, session.tracker, cfg)
        session.tracker.end(session.parent, "KILLED")  # `--resume` opens it again
        raise KeyboardInterrupt(
            f"sweep {cfg.name!r} interrupted; continue it with "
            f"`sweep run --name {cfg.name} --resume`"
        ) from None
    finally:
        restore_sigterm(previous_sigterm)
        ray_start.end()  # beside the round's last summary refresh, which `settle` awaits
        settle(session.parent)


def _summarise(session: _Session) -> SweepSummary:
    """The best trial on the parent run, which is closed, and the summary returned."""
    cfg, study, tracker, parent = session.cfg, session.study, session.tracker, session.parent
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(finished, key=lambda t: t.values[0]) if finished else None
    tracker.log(
        parent,
        metrics={
            "n_finished": session.complete,
            "n_failed": session.failed,
            "sweep_spent_usd": session.ledger.spent_usd,
        },
        tags={"stopped": session.ledger.describe()} if session.ledger.stopped else None,
    )
    if best is not None:
        # Tags, not params: a resumed sweep may find a better trial, and params are immutable.
        tracker.log(
            parent,
            metrics={"best_score": best.values[0]},
            tags={f"best.{k}": v for k, v in best.params.items()},
        )
        if cfg.multi_objective:
            tracker.log(parent, metrics={"n_pareto": len(study.best_trials)})
    tracker.end(parent)
    return SweepSummary(
        cfg.name,
        cfg.task,
        cfg.budget_usd,
        session.complete,
        session.failed,
        None if best is None else best.values[0],
        {} if best is None else dict(best.params),
        parent,
        cfg.tracking,
        tuple(session.failures),
        session.ledger.describe() if session.ledger.stopped else "",
    )


def run_sweep(
    cfg: SweepConfig,
    resume: bool = False,
    out: TextIO | None = None,
    objective: Objective | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep until `cfg.n_trials` trials have finished.

    `objective` replaces the one `cfg.objective` names (a seam for tests and custom code);
    progress lines go to `out` (standard output by default).
    """
    validate(cfg)
    existing = study_exists(cfg.name, cfg.optuna_storage)
    if resume and not existing:
        raise ValueError(
            f"--resume: no sweep named {cfg.name!r} in {cfg.optuna_storage}; "
            "drop --resume to start it, or check --name and --storage."
        )
    if existing and not resume:
        raise ValueError(
            f"A sweep named {cfg.name!r} already exists in {cfg.optuna_storage}; pass --resume "
            "to continue it, or choose another --name."
        )
    _quiet()
    ray_start = RayStart(ray_address(cfg.address))
    try:
        session = _open(cfg, resume, out or sys.stdout)
    except BaseException:
        ray_start.end()
        raise
    _run_rounds(session, objective or objective_for(cfg), ray_start)
    return _summarise(session)
