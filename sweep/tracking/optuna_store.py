"""The Optuna stores a sweep lives in: storage from a URI, the study and its stored config,
and recovery of trials a dead driver left RUNNING (used by `tuner`, `options` and `doctor`)."""

from __future__ import annotations

import contextlib
from typing import Any

from sweep.config import SweepConfig, store_path
from sweep.tracking.schema import TAG_TRIAL_NUMBER
from sweep.tracking.sqlite import check_store, fast_sqlite, new_sqlite, sqlite_uri, store_lock


def optuna_storage(uri: str) -> Any:
    """An RDB URL (sqlite:///, postgresql://, mysql://) or a journal file path (for clusters
    whose shared file system does not lock SQLite well)."""
    import optuna

    if uri.startswith(("sqlite:", "postgresql", "mysql")):
        path = store_path(uri) if uri.startswith("sqlite:") else None
        # Its tables are created (or checked) by one process at a time: sweeps started at
        # once on a new store would otherwise race to create them, or find one half-made.
        with store_lock(path):
            if path and ":memory:" not in str(path) and not path.exists():
                new_sqlite(path)  # its tables are then created in WAL mode: no fsync each
            else:
                check_store(path, "Optuna store", "studies")
            storage = optuna.storages.RDBStorage(
                sqlite_uri(path) if path and ":memory:" not in str(path) else uri,
                engine_kwargs={"connect_args": {"timeout": 60}} if path else None,
            )
        fast_sqlite(storage.engine)
        return storage
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(uri))


def objectives_of(cfg: SweepConfig) -> tuple[list[str], list[str]]:
    """(metrics, modes) the study optimises: the score, and in budget-aware mode also the
    dollars the allocation costs."""
    metrics, modes = cfg.mode.metrics
    return list(metrics), list(modes)


def study_state(cfg: SweepConfig, new: bool = False) -> tuple[Any, int]:
    """The study and its number of finished trials: complete, or pruned (stopped early by
    the scheduler: they count toward --trials, as in Optuna and Tune). With `new`, the study
    is created by this call or not at all: a sweep of that name started meanwhile by another
    process is a user error, not a study two drivers share."""
    import optuna

    modes = objectives_of(cfg)[1]
    try:
        study = optuna.create_study(
            storage=optuna_storage(cfg.optuna_storage),
            study_name=cfg.name,
            directions=["maximize" if m == "max" else "minimize" for m in modes],
            load_if_exists=not new,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(
            f"A sweep named {cfg.name!r} was started in {cfg.optuna_storage} a moment ago by "
            "another process; pass --resume to continue it, or choose another --name."
        ) from None
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    complete = len(study.get_trials(deepcopy=False, states=done))
    return study, complete


def delete_study(cfg: SweepConfig) -> None:
    """Remove a study this driver created and could not start (nothing half-written)."""
    import optuna

    with contextlib.suppress(KeyError):  # not created after all
        optuna.delete_study(study_name=cfg.name, storage=optuna_storage(cfg.optuna_storage))


def study_exists(name: str, storage: str) -> bool:
    """Whether `storage` holds a study `name`, without creating the storage."""
    import optuna

    path = store_path(storage)
    if path is not None and not path.exists():
        return False
    try:
        optuna.load_study(study_name=name, storage=optuna_storage(storage))
    except KeyError:
        return False
    return True


def stored_config(name: str, storage: str) -> dict[str, Any] | None:
    """The config a sweep was started with (None when there is no such sweep)."""
    import optuna

    if not study_exists(name, storage):
        return None
    study = optuna.load_study(study_name=name, storage=optuna_storage(storage))
    stored = study.user_attrs.get("sweep_config")
    if not isinstance(stored, dict):
        return None
    if stored.get("grid_labels") and "compute_allowance_usd" not in stored:
        # A grid stored before the allowance had its own field kept it under budget_usd.
        return {**stored, "compute_allowance_usd": stored["budget_usd"], "budget_usd": 0.0}
    return dict(stored)


# Optuna has no state for a trial that ended without failing: one a driver had in flight
# when it stopped (Ctrl-C, SIGKILL), or one the spending cap refused before it started. Both
# are FAIL, marked with this user attribute ("interrupted", "refused"), and are no failures.
ENDED_WITHOUT_FAILING = "doa.ended"
# How often a planned point (annotate only, f = 1, a warm-start share) may fail before the
# sweep stops queueing it: once more after a failure (a killed worker, an OOM); a point that
# fails twice is the point's fault, and each attempt costs the sweep a Tune round.
PLANNED_ATTEMPTS = 2


def mark_trial_ended(study: Any, number: int, why: str) -> None:
    """Mark the RUNNING trial `number` as ended without failing (before it is told FAIL)."""
    storage = study._storage  # Optuna's public Study has no setter for another trial's attrs
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    storage.set_trial_user_attr(trial_id, ENDED_WITHOUT_FAILING, why)


def mark_refused(cfg: SweepConfig, number: int) -> None:
    """Mark the trial `number` the spending cap refused (it never ran) before it is failed."""
    import optuna

    if number >= 0:
        study = optuna.load_study(study_name=cfg.name, storage=optuna_storage(cfg.optuna_storage))
        mark_trial_ended(study, number, "refused")


def failed_trials(study: Any) -> list[Any]:
    """The study's trials that failed: FAIL, less the interrupted and refused ones."""
    import optuna

    fail = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return [t for t in fail if ENDED_WITHOUT_FAILING not in t.user_attrs]


def recover_stale_trials(study: Any, tracker: Any, cfg: SweepConfig) -> int:
    """Trials a dead driver left RUNNING: COMPLETE if their MLflow run finished (the result
    exists, only Optuna was not told), else FAIL (interrupted), and a planned point queued
    again. Returns how many were recovered."""
    import optuna

    finished = {
        str(r.data.tags.get(TAG_TRIAL_NUMBER)): r
        for r in tracker.trial_runs(task=cfg.task, sweep=cfg.name)
    }
    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        run = finished.get(str(trial.number))
        metrics = objectives_of(cfg)[0]
        if run is not None and all(m in run.data.metrics for m in metrics):
            study.tell(trial.number, [run.data.metrics[m] for m in metrics])
            recovered += 1
        else:
            mark_trial_ended(study, trial.number, "interrupted")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            # A planned point (annotate only, f = 1, ...) the dead driver had in flight
            # goes back in the queue: the resumed sweep must still measure it.
            planned = trial.system_attrs.get("fixed_params")
            if planned:
                study.enqueue_trial(dict(planned))
    return recovered


def _covered(point: dict[str, Any], params: dict[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in point.items())


def queue_missing_points(study: Any, cfg: SweepConfig) -> int:
    """Points that must be measured and have no finished, running or queued trial go (back)
    in the queue: the mode's planned points (a grid's), each until it is measured, and any
    point a sweep enqueued (annotate only, f = 1, warm-start shares) whose trial failed,
    until it has failed PLANNED_ATTEMPTS times. A failed point is so measured again, never
    replaced by a sampled one or a repeat of another (Optuna's GridSampler counts a failed
    point as visited). Returns how many were queued."""
    import optuna

    state = optuna.trial.TrialState
    started = study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED, state.RUNNING))
    queued = study.get_trials(deepcopy=False, states=(state.WAITING,))  # enqueued, not yet run
    taken = [t.params for t in started] + [t.system_attrs.get("fixed_params", {}) for t in queued]
    failures: dict[tuple[tuple[str, Any], ...], int] = {}
    ended = study.get_trials(deepcopy=False, states=(state.FAIL,))
    for trial in ended:  # in trial order: the first failure of a point first
        fixed = trial.system_attrs.get("fixed_params")
        if fixed:
            key = tuple(sorted(fixed.items()))
            failed = ENDED_WITHOUT_FAILING not in trial.user_attrs
            failures[key] = failures.get(key, 0) + failed
    again = [dict(k) for k, n in failures.items() if n < PLANNED_ATTEMPTS]
    missing: list[dict[str, Any]] = []
    for point in [*cfg.mode.planned_points(), *again]:
        if not any(_covered(point, params) for params in [*taken, *missing]):
            missing.append(point)
    for params in missing:
        study.enqueue_trial(params)
    return len(missing)


MIXED_METRICS = "a study never mixes two metrics"
# The metric a sweep's study holds, once known, per process: it never changes afterwards, so
# a worker reads the study once, not once per trial. Keyed by store, study and parent run
# (a study deleted and started again under its name has another parent run).
_KNOWN_METRIC: dict[tuple[str, str, str], str] = {}


def check_study_metric(cfg: SweepConfig, metric: str, tracker: Any, sweep_run: str = "") -> None:
    """A study never mixes two metrics: the first finished trial's metric name is stored in
    the study (or read from its MLflow runs, for studies older than that); a trial scored
    with another fails with a clear error, not a number on another scale. With `sweep_run`
    (the parent run's id) the stored name is remembered for this process."""
    import optuna

    key = (cfg.optuna_storage, cfg.name, sweep_run)
    stored = _KNOWN_METRIC.get(key) if sweep_run else None
    if stored is None:
        storage = optuna_storage(cfg.optuna_storage)
        study = optuna.load_study(study_name=cfg.name, storage=storage)
        stored = study.user_attrs.get("metric")
        if stored is None:
            runs = tracker.trial_runs(task=cfg.task, sweep=cfg.name)
            stored = next((m for r in runs if (m := r.data.tags.get("metric"))), None)
            study.set_user_attr("metric", stored or metric)
        if sweep_run:
            _KNOWN_METRIC[key] = stored or metric
    if stored is not None and stored != metric:
        raise ValueError(
            f"sweep {cfg.name!r} scores with metric {stored!r}, but this trial was scored with "
            f"{metric!r}; {MIXED_METRICS}: start a new sweep (another --name) "
            "for the new metric, or restore what changed it (e.g. BERTScore's model)."
        )
