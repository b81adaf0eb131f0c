"""The sweep driver: Ray Tune runs the trials, Optuna decides, MLflow records.

A sweep is a loop of Tune rounds over one persistent Optuna study: each round asks for the
trials still missing, so failed trials are replaced and the study ends with exactly the
requested number of finished trials, and a resumed sweep (a new driver on the same study)
repeats nothing that finished. `run_sweep` reads as its phases: open (or resume), run the
rounds, summarise.
"""

from __future__ import annotations

import errno
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
from sweep.engine.ray_hooks import FailFast, PendingTimeout, Progress, SpendCap, SummaryRefresh
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
from sweep.engine.stopping import interrupted, no_space, resume_command, stopped_by_full_disk
from sweep.engine.trainable import (
    Objective,
    failed_usd_per_second,
    make_trainable,
    trial_budget_usd,
    trial_compute_usd,
)
from sweep.engine.validation import validate
from sweep.tracking.driver_lock import driver_lock
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.optuna_store import (
    MIXED_METRICS,
    delete_study,
    failed_trials,
    mark_refused,
    objectives_of,
    optuna_storage,
    queue_missing_points,
    recover_stale_trials,
    study_exists,
    study_state,
)
from sweep.tracking.schema import trial_spent_usd

logger = logging.getLogger(__name__)

__all__ = ["SweepSummary", "resume_command", "run_sweep"]


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
    # MLflow logs a store's error with its traceback before raising it: the error is shown.
    for name in ("ray", "ray.tune", "ray.train", "ray.data", "mlflow.store.db.utils"):
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
    failed: int = 0  # this driver's failures (the allowance); the study keeps them all
    failures: list[str] = field(default_factory=list)
    stopped: str = ""  # why the sweep ended before its trials were done

    @property
    def kept(self) -> bool:
        """Whether the sweep stays in the stores when it stops now (else it is undone)."""
        return self.rounds > 0 or self.resume


def _open(cfg: SweepConfig, resume: bool, out: TextIO) -> _Session:
    """The study and the parent run, new or resumed (stale trials recovered). A new sweep's
    study is created first, by this driver or not at all, then its parent run; a start that
    fails removes both (`_abandon`): no RUNNING parent, no study `--resume` cannot continue."""
    points = [] if resume else first_points(cfg)  # reads other tasks' results: before writing
    Path(cfg.root).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(cfg.tracking)
    experiment_id = tracker.experiment_id(cfg.task)
    ledger = SpendLedger(cfg.max_spend_usd, failed_usd_per_second(cfg), cfg.objective == "real")
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


def _stop(session: _Session, error: BaseException) -> NoReturn:
    """A sweep stopped by Ctrl-C, SIGTERM or an error leaves nothing RUNNING: in-flight runs
    are closed as KILLED and their Optuna trials failed (or completed, where the result had
    been logged); the parent is KILLED (`--resume` opens it again). Best effort: what a
    second Ctrl-C or a full disk leaves open, `--resume` closes. Raises, in one line where
    it can (an interrupt, a full disk)."""
    cfg, kept = session.cfg, session.kept
    try:
        if not kept:
            _abandon(session)
        else:
            session.tracker.close_stale_runs(session.parent, cfg.task)
            recover_stale_trials(session.study, session.tracker, cfg)
            session.tracker.end(session.parent, "KILLED")
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop cleaning up, still say how to go on
    except Exception as cleanup:  # e.g. the disk is full: one line, the error follows
        why = (str(cleanup).splitlines() or [type(cleanup).__name__])[0]
        logger.warning("sweep %s: could not close its runs (%s); --resume will", cfg.name, why)
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt(interrupted(cfg, kept)) from None
    full = stopped_by_full_disk(cfg, error, kept)
    if full is not None:
        raise full from None
    raise error


def _tuner(session: _Session, trainable: Any, waiting: PendingTimeout) -> Any:
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
    cap = SpendCap(
        searcher,
        session.ledger,
        halt.halted,
        partial(trial_compute_usd, cfg),
        partial(mark_refused, cfg),
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(cap, max_concurrent=cfg.concurrency),
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
            stop=waiting,
            verbose=0,
            callbacks=[
                halt,
                waiting,
                Progress(
                    cfg.n_trials,
                    study,
                    session.out,
                    session.ledger.spent_usd,
                    partial(trial_budget_usd, cfg),
                    failed=len(failed_trials(study)),  # the sweep's, over rounds and drivers
                ),
                # The answer in the MLflow descriptions and artifacts, kept current.
                SummaryRefresh(cfg.tracking, cfg.task, cfg.name, session.parent),
            ],
        ),
    )


def _close_failed_runs(session: _Session, results: list[Any]) -> None:
    """Runs whose process could not close them: a killed worker (FAILED, with Ray's error)
    or a trial the scheduler stopped early (KILLED); their reasons kept for the console
    (each the last line of the whole error, whatever its length)."""
    errors = {
        _ray_trial_id(r): f"{type(r.error).__name__}: {r.error}"
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


def _why_stop(session: _Session) -> str:
    """Why no more rounds may start ("" while they may): failures that are systematic, the
    failure allowance, or a full disk."""
    cfg, failures = session.cfg, session.failures
    first = systematic(failures) if session.complete == 0 else None
    if first is not None:
        return (
            f"the first {len(failures)} trials failed with the same error and none finished "
            f"(not the trials' bad luck): {first}"
        )
    allowance = max(10, 2 * cfg.n_trials)
    if session.failed > allowance:
        return f"{session.failed} trials failed, past the allowance of {allowance}"
    full = next((reason for reason in failures if no_space(reason)), None)
    if full is not None:  # every later trial would fail too: stopped as a full disk is
        raise OSError(errno.ENOSPC, f"No space left on device: a trial could not write ({full})")
    return ""


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
        while session.complete < cfg.n_trials:
            session.stopped = _why_stop(session)
            if session.stopped:
                logger.warning("sweep %s: stopping: %s", cfg.name, session.stopped)
                break
            queue_missing_points(session.study, cfg)
            session.rounds += 1
            waiting = PendingTimeout(cfg.pending_timeout_s)
            grid = _tuner(session, trainable, waiting).fit()
            _close_failed_runs(session, [grid[i] for i in range(len(grid))])
            session.study, session.complete = study_state(cfg)
            if waiting.expired:
                raise ValueError(
                    f"{waiting.expired}; sweep {cfg.name!r} stopped: continue it with "
                    f"`{resume_command(cfg)}` when the cluster has room"
                )
            if any(MIXED_METRICS in reason for reason in session.failures):
                break  # every later trial would be scored with the other metric too
            if session.ledger.stopped:
                session.stopped = session.ledger.describe()
                print(f"sweep {cfg.name}: {session.stopped}", file=session.out)
                break
    except BaseException as error:
        _stop(session, error)
    finally:
        ray_start.end()  # beside the round's last summary refresh, which `settle` awaits
        settle(session.parent)


def _summarise(session: _Session) -> SweepSummary:
    """The best trial on the parent run, which is closed (FAILED, saying why, when no trial
    finished), and the summary returned."""
    cfg, study, tracker, parent = session.cfg, session.study, session.tracker, session.parent
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(finished, key=lambda t: t.values[0]) if finished else None
    n_failed = len(failed_trials(study))  # over every round and driver
    tracker.log(
        parent,
        metrics={
            "n_finished": session.complete,
            "n_failed": n_failed,
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
    if session.complete:
        tracker.end(parent)
    else:
        tracker.describe(parent, _nothing_finished(session, n_failed))
        tracker.end(parent, "FAILED")
    return SweepSummary(
        cfg.name,
        cfg.task,
        cfg.budget_usd,
        session.complete,
        n_failed,
        None if best is None else best.values[0],
        {} if best is None else dict(best.params),
        parent,
        cfg.tracking,
        tuple(session.failures),
        session.ledger.describe() if session.ledger.stopped else session.stopped,
    )


def _nothing_finished(session: _Session, n_failed: int) -> str:
    """The failed parent run's description: no trial finished, and why."""
    reasons = list(dict.fromkeys(session.failures))[:3]
    lines = [f"**No trial finished** ({n_failed} failed): the sweep has no answer."]
    if session.stopped:
        lines.append(f"Stopped: {session.stopped}.")
    lines += [f"- `{reason}`" for reason in reasons] or ["No failure was reported."]
    return "\n\n".join(lines)


def run_sweep(
    cfg: SweepConfig,
    resume: bool = False,
    out: TextIO | None = None,
    objective: Objective | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep until `cfg.n_trials` trials have finished; one driver per
    sweep at a time (`sweep.tracking.driver_lock`).

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
    with driver_lock(cfg):
        return _drive(cfg, resume, out or sys.stdout, objective or objective_for(cfg))


def _drive(cfg: SweepConfig, resume: bool, out: TextIO, objective: Objective) -> SweepSummary:
    """`run_sweep` once its driver holds the sweep: open, run the rounds, summarise."""
    _quiet()
    previous_sigterm = sigterm_as_interrupt()  # from here on, SIGTERM cleans up as Ctrl-C
    try:
        ray_start = RayStart(ray_address(cfg.address))
        try:
            session = _open(cfg, resume, out)
        except KeyboardInterrupt:
            ray_start.end()
            raise KeyboardInterrupt(interrupted(cfg, resume)) from None
        except BaseException:
            ray_start.end()
            raise
        _run_rounds(session, objective, ray_start)
        return _summarise(session)
    except KeyboardInterrupt as error:
        if str(error):
            raise
        # A second Ctrl-C cut the cleanup short (or the first came between two phases):
        # still one line, with the command that continues the sweep where it was kept.
        raise KeyboardInterrupt(interrupted(cfg, _still_there(cfg))) from None
    finally:
        restore_sigterm(previous_sigterm)


def _still_there(cfg: SweepConfig) -> bool:
    try:
        return study_exists(cfg.name, cfg.optuna_storage)
    except BaseException:
        return True  # the resume command is the safe hint
