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
from typing import Any, NoReturn, TextIO

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from cluster import ray_address
from sweep.config import SweepConfig
from sweep.engine.progress import last_line, systematic
from sweep.engine.ray_hooks import FailFast, Progress, SpendCap, SummaryRefresh
from sweep.engine.raystart import (
    RayStart,
    check_cluster_fits,
    restore_sigterm,
    sigterm_as_interrupt,
    trial_resources,
)
from sweep.engine.refresher import settle
from sweep.engine.search import NumberedSpace, first_points, make_sampler
from sweep.engine.spend import SpendLedger
from sweep.engine.trainable import (
    Objective,
    failed_usd_per_second,
    make_trainable,
    point_fields,
)
from sweep.engine.validation import validate
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import (
    MIXED_METRICS,
    delete_study,
    objectives_of,
    optuna_storage,
    queue_missing_points,
    recover_stale_trials,
    study_exists,
    study_state,
)
from sweep.tracking.schema import trial_spent_usd

logger = logging.getLogger(__name__)


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
    resume: bool = False
    rounds: int = 0  # Tune rounds started; before the first, a new sweep keeps nothing
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _open(cfg: SweepConfig, resume: bool, out: TextIO) -> _Session:
    """The study and the parent run, new or resumed (stale trials recovered). A new sweep's
    study is created first, by this driver or not at all, then its parent run; a start that
    fails removes both (`_abandon`): no RUNNING parent, no study `--resume` cannot continue."""
    points = [] if resume else first_points(cfg)  # reads other tasks' results: before writing
    Path(cfg.root).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(cfg.tracking)
    experiment_id = tracker.experiment_id(cfg.task)
    ledger = SpendLedger(cfg.max_spend_usd, failed_usd_per_second(cfg))
    if resume:
        return _reopen(cfg, tracker, experiment_id, out, ledger)
    study, complete = study_state(cfg, new=True)
    session = _Session(cfg, tracker, experiment_id, "", study, complete, out, ledger)
    try:
        study.set_user_attr("sweep_config", cfg.to_dict())
        for params in points:
            study.enqueue_trial(params, skip_if_exists=True)
        params = cfg.mode.sweep_params(cfg.to_dict())
        session.parent = tracker.start_sweep_run(cfg.task, cfg.name, params)
    except BaseException:
        _abandon(session)
        raise
    return session


def _reopen(
    cfg: SweepConfig, tracker: Any, experiment_id: str, out: TextIO, ledger: SpendLedger
) -> _Session:
    """A resumed sweep: stale runs closed and trials recovered, then its parent reopened."""
    parent = tracker.find_sweep_run(cfg.task, cfg.name)
    killed = tracker.close_stale_runs(parent, cfg.task) if parent else 0
    study, _ = study_state(cfg)
    recovered = recover_stale_trials(study, tracker, cfg)
    study, complete = study_state(cfg)
    print(
        f"resuming {cfg.name}: {complete} finished trials kept ({recovered} recovered), "
        f"{killed} interrupted runs closed",
        file=out,
    )
    # Failed and killed runs spent too (a failure logs its time's cost).
    for run in tracker.trial_runs(task=cfg.task, sweep=cfg.name, status=None):
        ledger.record(trial_spent_usd(run.data.metrics))
    if parent is not None:
        tracker.reopen(parent)
    else:
        parent = tracker.start_sweep_run(cfg.task, cfg.name, cfg.mode.sweep_params(cfg.to_dict()))
    return _Session(cfg, tracker, experiment_id, parent, study, complete, out, ledger, True)


def _abandon(session: _Session) -> None:
    """Undo a new sweep's start that failed before its first trial (a cluster that would
    not take it, an interrupt): its parent run and study are removed, so that the same
    command can simply be run again. Best effort: the original error is the one to show."""
    try:
        if session.parent:
            session.tracker.delete(session.parent)
        delete_study(session.cfg)
    except Exception:
        logger.warning("sweep %s: could not remove its failed start", session.cfg.name)


def resume_command(cfg: SweepConfig) -> str:
    """The command that continues `cfg`'s sweep, complete: run as printed from any folder
    it finds the same stores (paths are absolute)."""
    import shlex

    words = ["sweep", "grid" if cfg.grid_labels else "run", "--name", cfg.name, "--resume"]
    words += ["--storage", cfg.storage] if cfg.storage else ["--root", cfg.root]
    if cfg.tracking_uri:
        words += ["--tracking-uri", cfg.tracking_uri]
    return shlex.join(words)


def _stop(session: _Session, error: BaseException) -> NoReturn:
    """A sweep stopped by Ctrl-C, SIGTERM or an error leaves nothing RUNNING: in-flight runs
    are closed as KILLED and their Optuna trials failed (or completed, where the result had
    been logged); the parent is KILLED (`--resume` opens it again). Raises."""
    cfg = session.cfg
    kept = session.rounds > 0 or session.resume
    if not kept:
        _abandon(session)
    else:
        session.tracker.close_stale_runs(session.parent, cfg.task)
        recover_stale_trials(session.study, session.tracker, cfg)
        session.tracker.end(session.parent, "KILLED")
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt(_interrupted(cfg, kept)) from None
    raise error


def _interrupted(cfg: SweepConfig, kept: bool) -> str:
    """What an interrupted sweep says: how to go on, or that it left nothing."""
    if kept:
        return f"sweep {cfg.name!r} interrupted; continue it with `{resume_command(cfg)}`"
    return f"sweep {cfg.name!r} interrupted before its first trial; nothing was kept"


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
                Progress(
                    cfg.n_trials,
                    study,
                    session.out,
                    session.ledger.spent_usd,
                    partial(trial_budget_usd, cfg),
                ),
                # The answer in the MLflow descriptions and artifacts, kept current.
                SummaryRefresh(cfg.tracking, cfg.task, cfg.name, session.parent),
            ],
        ),
    )


def trial_budget_usd(cfg: SweepConfig, config: Mapping[str, Any]) -> float:
    """A trial's budget B from its point: the sweep's, a searched one, or a grid point's."""
    return float(point_fields(cfg, config, 0)["budget_usd"])


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
            session.rounds += 1
            grid = _tuner(session, trainable).fit()
            _close_failed_runs(session, [grid[i] for i in range(len(grid))])
            session.study, session.complete = study_state(cfg)
            if any(MIXED_METRICS in reason for reason in session.failures):
                break  # every later trial would be scored with the other metric too
            if session.ledger.stopped:
                print(f"sweep {cfg.name}: {session.ledger.describe()}", file=session.out)
                break
    except BaseException as error:
        _stop(session, error)
    finally:
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
    previous_sigterm = sigterm_as_interrupt()  # from here on, SIGTERM cleans up as Ctrl-C
    try:
        ray_start = RayStart(ray_address(cfg.address))
        try:
            session = _open(cfg, resume, out or sys.stdout)
        except KeyboardInterrupt:
            ray_start.end()
            raise KeyboardInterrupt(_interrupted(cfg, resume)) from None
        except BaseException:
            ray_start.end()
            raise
        _run_rounds(session, objective or objective_for(cfg), ray_start)
        return _summarise(session)
    finally:
        restore_sigterm(previous_sigterm)
