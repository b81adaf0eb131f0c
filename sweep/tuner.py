"""Ray Tune runs the trials, Optuna decides, MLflow records: the sweep driver.

A sweep is a loop of Tune rounds over one persistent Optuna study: each round asks for the
trials still missing, so failed trials are replaced and the study ends with exactly the
requested number of finished trials, and a resumed sweep (a new driver on the same study)
repeats nothing that finished.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from objectives.budget import Budget, allocate
from objectives.meter import meter_cost_model
from objectives.trial_config import Report, TrialConfig, TrialResult, trial_config
from search_spaces import get_space
from search_spaces.spaces import FIRST_SHARES, PAPER_FRACTIONS
from sweep.config import SweepConfig, check_writable, store_path

logger = logging.getLogger(__name__)

Objective = Callable[[TrialConfig, Report | None], TrialResult]

# Sampled names: the Optuna parameter name is the Ray config key is the MLflow param name.
SAMPLED = ("compute_fraction", "temperature", "budget_usd", "n_labels", "n_unlabelled")
RAY_TMP = "/tmp/doa-ray"  # short: Ray's unix sockets break on paths over ~107 bytes


# --- validation before anything is written ---------------------------------------------


def _trial_fields(cfg: SweepConfig, fraction: float, seed: int) -> dict[str, Any]:
    return {
        **cfg.trial,
        "task": cfg.task,
        "budget_usd": cfg.budget_usd,
        "n_seed_labels": cfg.n_seed_labels,
        "compute_fraction": fraction,
        "seed": seed,
        "cache_dir": cfg.cache_dir,
    }


def point_fields(cfg: SweepConfig, config: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """TrialConfig fields of one sampled point: a compute fraction (with a searched budget in
    budget-aware mode) or, in grid mode, a labelled x unlabelled pair."""
    sampled = {k: config[k] for k in ("temperature",) if k in config}
    base = trial_config(_trial_fields(cfg, 0.0, seed), cfg.preset)
    budget = cfg.trial_budget_usd(config, base.prices(base.task_spec()).label_price(cfg.task))
    fields = {**_trial_fields(cfg, float(config.get("compute_fraction", 0.0)), seed), **sampled}
    fields["budget_usd"] = budget
    if cfg.is_grid:
        n_unlabelled = int(config["n_unlabelled"])
        fields["n_labels"] = int(config["n_labels"])
        fields["compute_fraction"] = cfg.budget_usd / budget if n_unlabelled else 0.0
        if n_unlabelled:
            fields["max_unlabelled"] = n_unlabelled
    if "n_threads" not in fields:
        fields["n_threads"] = max(1, int(cfg.cpus_per_trial))
    if "n_devices" not in fields and fields["compute_fraction"] > 0 and cfg.teacher_gpus >= 2:
        fields["n_devices"] = int(cfg.teacher_gpus)  # shard over what it holds
    return fields


def validate(cfg: SweepConfig) -> None:
    """Everything that can be checked before a file is written, with one clear error."""
    from cluster import check_reachable, ray_address

    Budget(cfg.budget_usd)
    base = trial_config(_trial_fields(cfg, 0.0, 0), cfg.preset)
    spec = base.task_spec()
    meter_cost_model(base.meter, spec, base.charge_student_training)  # --meter paper's needs
    lowest = min(cfg.budget_range) if cfg.budget_range else cfg.budget_usd
    annotate = allocate(spec.name, lowest, 0.0, base.prices(spec), cfg.n_seed_labels)
    if annotate.n_new_labels == 0 and not cfg.is_grid:
        raise ValueError(
            f"budget_usd={lowest:g} buys no label at ${annotate.usd_per_label:g} per "
            f"label for {spec.name!r}; a sweep needs a budget of at least one label."
        )
    if cfg.objective == "real":
        from objectives.data import load_task_data

        data = load_task_data(spec, base.data_dir)
        labelled = max([cfg.n_seed_labels, *cfg.grid_labels])
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
    check_reachable(ray_address(cfg.address))


# --- objective, sampler, space ----------------------------------------------------------


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
    import optuna

    seed = cfg.sampler_seed + n_existing_trials
    if cfg.is_grid:  # every point once, whatever sampler was named
        grid = {"n_labels": list(cfg.grid_labels), "n_unlabelled": list(cfg.grid_unlabelled)}
        return optuna.samplers.GridSampler(grid, seed=seed)
    # The first shares are enqueued (`first_points`); a few random ones after them do the
    # rest of the start-up (bench/search_efficiency.py: more only delayed the model).
    startup = max(3, min(5, cfg.n_trials // 4))
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(0, startup - n_existing_trials),
            multivariate=True,
            group=True,  # the space is conditional (temperature only when distilling)
            constant_liar=True,  # concurrent trials do not all ask for the same point
        )
    if cfg.sampler == "gp":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=max(0, startup - n_existing_trials)
        )
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler({"compute_fraction": list(PAPER_FRACTIONS)}, seed=seed)


class NumberedSpace:
    """The sweep's space plus the Optuna trial number in the config (a picklable callable,
    since Tune checkpoints its searcher with pickle): a grid point, or the named space with
    the budget in front in budget-aware mode."""

    def __init__(self, cfg: SweepConfig) -> None:
        self.name = cfg.space_name
        self.grid = (list(cfg.grid_labels), list(cfg.grid_unlabelled))
        self.budget_range = list(cfg.budget_range)

    def __call__(self, trial: Any) -> dict[str, Any]:
        if self.grid[0]:
            trial.suggest_categorical("n_labels", self.grid[0])
            trial.suggest_categorical("n_unlabelled", self.grid[1])
            return {"optuna_trial_number": trial.number}
        if self.budget_range:
            trial.suggest_float("budget_usd", *self.budget_range, log=True)
        return {**get_space(self.name)(trial), "optuna_trial_number": trial.number}


def first_points(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Points a new sweep tries before the sampler chooses: annotate only, then the best
    compute shares found on `cfg.warm_start` tasks (shares transfer across tasks better than
    raw label counts do), then the other FIRST_SHARES; at most `cfg.n_trials` of them."""
    if cfg.is_grid or cfg.sampler == "grid":
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
    if cfg.space_name == "fraction_grid":  # a categorical space takes its own values only
        fractions = [min(PAPER_FRACTIONS, key=lambda g: abs(g - f)) for f in fractions]
    for fraction in list(dict.fromkeys(fractions))[: cfg.n_trials]:
        params: dict[str, Any] = {"compute_fraction": fraction}
        if cfg.budget_range:
            params["budget_usd"] = cfg.budget_range[0]
        out.append(params)
    return out


def _best_of(tracking_uri: str, task: str) -> list[float]:
    from sweep.results import best_allocations
    from sweep.tracking import Tracker

    return [r.compute_fraction for r in best_allocations(Tracker(tracking_uri), task)]


# --- the trainable --------------------------------------------------------------------


def summarize(results: list[TrialResult]) -> dict[str, Any]:
    """One trial's metrics over its seeds: mean score and spread; the practitioner ledger
    is one allocation's cost (the mean), the sweep ledger adds every seed's real spend."""
    scores = [r.score for r in results]
    first = results[0]
    mean = statistics.fmean

    def optional_mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return mean(present) if present else None

    low, high = score_interval(results)
    return {
        "score": mean(scores),
        "score_std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
        "score_low": low,
        "score_high": high,
        "n_seeds": len(scores),
        "test_score": optional_mean([r.test_score for r in results]),
        "teacher_score": optional_mean([r.teacher_score for r in results]),
        "metric": first.metric,
        "strategy": first.strategy,
        "teacher_status": first.teacher_status,
        "compute_fraction": first.compute_fraction,
        "n_new_labels": first.n_new_labels,
        "n_labels_used": first.n_labels_used,
        "n_unlabelled": mean([r.n_unlabelled for r in results]),
        "annotation_usd": first.annotation_usd,
        "compute_usd": first.compute_usd,
        "compute_spent_usd": mean([r.compute_spent_usd for r in results]),
        "device_hours": mean([r.device_seconds for r in results]) / 3600,
        "practitioner_usd": mean([r.practitioner_usd for r in results]),
        "sweep_device_seconds": sum(r.sweep_device_seconds for r in results),
        "sweep_spent_usd": sum(r.sweep_spent_usd for r in results),
        "teacher_cache": ",".join(sorted({r.teacher_cache for r in results})),
        "soft_cache": ",".join(sorted({r.soft_cache for r in results})),
    }


def score_interval(results: list[TrialResult]) -> tuple[float | None, float | None]:
    """The mean score's interval: each seed's 90 % bootstrap interval over dev rows,
    averaged, and widened to hold every seed's score (the seeds' spread); None without
    either (one seed of an objective with no interval)."""
    bounds = [(r.score_low, r.score_high) for r in results]
    lows = [lo for lo, _ in bounds if lo is not None]
    highs = [hi for _, hi in bounds if hi is not None]
    seeds = [r.score for r in results] if len(results) > 1 else []
    if not (lows and highs) and not seeds:
        return None, None
    low = min([*seeds, *([statistics.fmean(lows)] if lows else [])])
    high = max([*seeds, *([statistics.fmean(highs)] if highs else [])])
    return low, high


MIXED_METRICS = "a study never mixes two metrics"


def check_study_metric(cfg: SweepConfig, metric: str, tracker: Any) -> None:
    """A study never mixes two metrics: the first finished trial's metric name is stored in
    the study (or read from its MLflow runs, for studies older than that); a trial scored
    with another fails with a clear error, not a number on another scale."""
    import optuna

    study = optuna.load_study(study_name=cfg.name, storage=optuna_storage(cfg.optuna_storage))
    stored = study.user_attrs.get("metric")
    if stored is None:
        runs = tracker.trial_runs(task=cfg.task, sweep=cfg.name)
        stored = next((m for r in runs if (m := r.data.tags.get("metric"))), None)
        study.set_user_attr("metric", stored or metric)
    if stored is not None and stored != metric:
        raise ValueError(
            f"sweep {cfg.name!r} scores with metric {stored!r}, but this trial was scored with "
            f"{metric!r}; {MIXED_METRICS}: start a new sweep (another --name) "
            "for the new metric, or restore what changed it (e.g. BERTScore's model)."
        )


def make_trainable(
    cfg: SweepConfig, objective: Objective, experiment_id: str, parent_run_id: str
) -> Callable[[dict[str, Any]], None]:
    """The function Ray runs for each trial (in any worker process)."""

    def trainable(config: dict[str, Any]) -> None:
        import ray
        from ray import tune

        from sweep.tracking import (
            TAG_BUDGET,
            TAG_MODE,
            TAG_SEED_LABELS,
            TAG_SWEEP,
            TAG_TRIAL_NUMBER,
            Tracker,
            run_name,
        )

        sampled = {k: config[k] for k in SAMPLED if k in config}
        seeds = list(range(cfg.seeds))
        first = point_fields(cfg, config, seeds[0])
        tracker = Tracker(cfg.tracking)
        context = ray.get_runtime_context()
        name = run_name(cfg.task, first["budget_usd"], first["compute_fraction"], seeds)
        if cfg.is_grid:
            name = f"{cfg.task}/L={config['n_labels']}/U={config['n_unlabelled']}"
        run_id = tracker.start_trial_run(
            cfg.task,
            experiment_id,
            parent_run_id,
            name,
            params={**sampled, "seeds": len(seeds)},
            tags={
                TAG_SWEEP: cfg.name,
                TAG_MODE: "grid" if cfg.is_grid else "budget",
                TAG_BUDGET: f"{first['budget_usd']:g}",
                TAG_SEED_LABELS: cfg.n_seed_labels,
                TAG_TRIAL_NUMBER: config.get("optuna_trial_number", ""),
                "ray.trial_id": tune.get_context().get_trial_id(),
                "ray.node_id": context.get_node_id(),
                "ray.node_ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
                # The GPUs Ray gave this trial (its CUDA_VISIBLE_DEVICES); empty on CPUs.
                "ray.gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
            },
        )
        try:
            results = []
            for seed in seeds:
                fields = point_fields(cfg, config, seed)
                # Two objectives cannot be judged on a partial score: no intermediate reports.
                progress = None if cfg.multi_objective else _intermediate
                result = objective(trial_config(fields, cfg.preset), progress)
                tracker.log(run_id, metrics={"seed_score": result.score}, step=seed)
                results.append(result)
            summary = summarize(results)
            check_study_metric(cfg, str(summary["metric"]), tracker)
            numeric = {k: v for k, v in summary.items() if isinstance(v, int | float)}
            text = {k: v for k, v in summary.items() if isinstance(v, str)}
            tracker.log(run_id, metrics=numeric, tags=text)
            tracker.end(run_id)
        except BaseException as exc:
            tracker.fail(run_id, f"{type(exc).__name__}: {exc}")
            raise
        tune.report({**summary, "stage": "final", "mlflow_run_id": run_id})

    return trainable


def _intermediate(metrics: dict[str, Any]) -> None:
    """Forward distillation progress to Tune (for ASHA and Optuna's intermediate values);
    step counts (no score) are for people watching a single trial, not for the search."""
    if metrics.get("stage") == "final" or "score" not in metrics:
        return
    from ray import tune

    tune.report({"score": float(metrics["score"]), "stage": str(metrics.get("stage"))})


# --- progress -------------------------------------------------------------------------


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    best: float | None = None
    best_fraction: float | None = None
    practitioner_usd: float = 0.0
    spent_usd: float = 0.0


# Where progress lines go. A module global, not a callback attribute: Tune pickles its
# callbacks into the experiment checkpoint, and a stream (e.g. pytest's) does not pickle.
_progress_out: TextIO | None = None


def _emit(line: str) -> None:
    print(line, file=_progress_out or sys.stdout, flush=True)


HEARTBEAT_S = 10.0


def _point(config: Mapping[str, Any]) -> str:
    """A trial's point as people read it: its compute share, or its grid cell."""
    if "n_labels" in config:
        return f"L={config['n_labels']} U={config['n_unlabelled']}"
    return f"f={float(config.get('compute_fraction', 0.0)):.2f}"


def _failure_reason(trial: Any) -> str:
    """The last line of the error Ray recorded for a trial (exception type and message),
    read from its error file: the worker may have died before MLflow heard of it."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    except (OSError, TypeError):
        return "its worker ended without saying why (see the Ray logs)"
    return _last_line(text)


def _last_line(text: str) -> str:
    """A traceback's last line: the exception's type and message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no error text"


def _progress_callback(total: int, study: Any) -> Any:
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self) -> None:
            import optuna

            done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            self.tally = Tally(done=len(done))
            if done:
                best = max(done, key=lambda t: t.values[0])
                self.tally.best = best.values[0]
                self.tally.best_fraction = best.params.get("compute_fraction", 0.0)
            self.running: dict[str, float] = {}  # trial id -> start time
            self.stage: dict[str, str] = {}  # trial id -> last stage it reported
            self.last_line_s = time.monotonic()

        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            self.running[trial.trial_id] = time.monotonic()

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **_: Any
        ) -> None:
            if result.get("stage") not in (None, "final"):
                self.stage[trial.trial_id] = f"{result['stage']} dev {result['score']:.3f}"

        def on_step_begin(self, iteration: int, trials: list[Any], **_: Any) -> None:
            # A heartbeat: a long trial shows it is alive at least every HEARTBEAT_S.
            now = time.monotonic()
            if not self.running or now - self.last_line_s < HEARTBEAT_S:
                return
            alive = [
                f"{_point(t.config)} for {now - self.running[t.trial_id]:.0f} s"
                + (f" ({self.stage[t.trial_id]})" if t.trial_id in self.stage else "")
                for t in trials
                if t.trial_id in self.running
            ]
            self._line("running " + ", ".join(alive))

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **_: Any
        ) -> None:
            self.running.pop(trial.trial_id, None)
            result = trial.last_result or {}
            if result.get("stage") != "final":
                return
            t = self.tally
            t.done += 1
            t.practitioner_usd += float(result.get("practitioner_usd", 0.0))
            t.spent_usd += float(result.get("sweep_spent_usd", 0.0))
            if t.best is None or result["score"] > t.best:
                t.best, t.best_fraction = float(result["score"]), result["compute_fraction"]
            self._line(f"trial {_point(trial.config)} score={result['score']:.4f}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            self.running.pop(trial.trial_id, None)
            self.tally.failed += 1
            self._line(f"trial {trial.trial_id} FAILED: {_failure_reason(trial)}")

        def _line(self, event: str) -> None:
            t = self.tally
            best = "-" if t.best is None else f"{t.best:.4f} at f={t.best_fraction:.2f}"
            _emit(
                f"[{t.done}/{total} done, {len(self.running)} running, {t.failed} failed] "
                f"{event}; best {best}; practitioner ${t.practitioner_usd:.2f}, "
                f"sweep spent ${t.spent_usd:.4f}"
            )
            self.last_line_s = time.monotonic()

    return Progress()


# --- the driver -------------------------------------------------------------------------


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


def _quiet() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # A failed trial is reported in the progress line and its reason kept in MLflow
    # (doa.failure); Ray's own tracebacks of it would only bury that.
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ctrl-C must stop the sweep, not just end one Tune round (the next round would start).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"


def _init_ray(address: str | None) -> bool:
    """Join `address`, or start an embedded Ray; True when this driver started it."""
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, _temp_dir=RAY_TMP, **common)
    return True


def _resources(cfg: SweepConfig) -> Any:
    from ray.tune import PlacementGroupFactory

    from cluster import ClusterProfile, resources_for

    profile = ClusterProfile(
        cfg.cpus_per_trial,
        cfg.teacher_gpus,
        cfg.student_gpus,
        cfg.teacher_node_resource,
        cfg.student_node_resource,
    )
    return profile, lambda config: PlacementGroupFactory(
        [resources_for(config, profile).as_ray_dict()]
    )


def _check_cluster_fits(profile: Any) -> None:
    import ray

    from cluster import check_feasible, resources_for

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    for kind, fraction in (("a distillation trial", 1.0), ("an annotation-only trial", 0.0)):
        check_feasible(resources_for({"compute_fraction": fraction}, profile), nodes, kind)


def optuna_storage(uri: str) -> Any:
    """An RDB URL (sqlite:///, postgresql://, mysql://) or a journal file path (for clusters
    whose shared file system does not lock SQLite well)."""
    import optuna

    if uri.startswith(("sqlite:", "postgresql", "mysql")):
        return optuna.storages.RDBStorage(
            uri,
            engine_kwargs={"connect_args": {"timeout": 60}} if uri.startswith("sqlite") else None,
        )
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(uri))


def objectives_of(cfg: SweepConfig) -> tuple[list[str], list[str]]:
    """(metrics, modes) the study optimises: the score, and in budget-aware mode also the
    dollars the allocation costs."""
    if cfg.multi_objective:
        return ["score", "practitioner_usd"], ["max", "min"]
    return ["score"], ["max"]


def _study_state(cfg: SweepConfig) -> tuple[Any, int]:
    """The study (created if new) and its number of finished trials."""
    import optuna

    modes = objectives_of(cfg)[1]
    study = optuna.create_study(
        storage=optuna_storage(cfg.optuna_storage),
        study_name=cfg.name,
        directions=["maximize" if m == "max" else "minimize" for m in modes],
        load_if_exists=True,
    )
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return study, complete


def _existing_study(name: str, storage: str) -> bool:
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

    if not _existing_study(name, storage):
        return None
    study = optuna.load_study(study_name=name, storage=optuna_storage(storage))
    stored = study.user_attrs.get("sweep_config")
    return dict(stored) if isinstance(stored, dict) else None


def _recover_stale_trials(study: Any, tracker: Any, cfg: SweepConfig) -> int:
    """Trials a dead driver left RUNNING: COMPLETE if their MLflow run finished (the result
    exists, only Optuna was not told), else FAIL, and a planned point queued again. Returns
    how many were recovered."""
    import optuna

    from sweep.tracking import TAG_TRIAL_NUMBER

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
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            # A planned point (annotate only, f = 1, ...) the dead driver had in flight
            # goes back in the queue: the resumed sweep must still measure it.
            planned = trial.system_attrs.get("fixed_params")
            if planned:
                study.enqueue_trial(dict(planned))
    return recovered


def _ray_trial_id(result: Any) -> str:
    """A result's Ray trial id: reported with its metrics, or in its folder's name
    (`trainable_<id>_<n>_...`) when the worker died before reporting anything."""
    reported = (result.metrics or {}).get("trial_id")
    if reported:
        return str(reported)
    parts = Path(str(result.path)).name.split("_")
    return parts[1] if len(parts) > 1 else ""


def _sigterm_as_interrupt() -> Any:
    """Treat SIGTERM like Ctrl-C while the sweep runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


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
    out = out or sys.stdout
    validate(cfg)
    existing = _existing_study(cfg.name, cfg.optuna_storage)
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
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from cluster import ray_address
    from sweep.summary import summary_callback
    from sweep.tracking import Tracker

    points = [] if resume else first_points(cfg)  # reads other tasks' results: before writing
    Path(cfg.root).mkdir(parents=True, exist_ok=True)
    tracker = Tracker(cfg.tracking)
    experiment_id = tracker.experiment_id(cfg.task)
    parent = tracker.find_sweep_run(cfg.task, cfg.name) if resume else None
    if parent is not None:
        tracker.reopen(parent)
    parent = parent or tracker.start_sweep_run(cfg.task, cfg.name, cfg.to_dict())
    study, complete = _study_state(cfg)
    if not resume:
        study.set_user_attr("sweep_config", cfg.to_dict())
        for params in points:
            study.enqueue_trial(params, skip_if_exists=True)
    if resume:
        killed = tracker.close_stale_runs(parent, cfg.task)
        recovered = _recover_stale_trials(study, tracker, cfg)
        study, complete = _study_state(cfg)
        print(
            f"resuming {cfg.name}: {complete} finished trials kept ({recovered} recovered), "
            f"{killed} interrupted runs closed",
            file=out,
        )
    global _progress_out
    _progress_out = out
    started_ray = _init_ray(ray_address(cfg.address))
    previous_sigterm = _sigterm_as_interrupt()
    try:
        profile, resources = _resources(cfg)
        _check_cluster_fits(profile)
        objective = objective or objective_for(cfg)
        trainable = tune.with_resources(
            make_trainable(cfg, objective, experiment_id, parent), resources
        )
        storage = optuna_storage(cfg.optuna_storage)
        failed = 0
        failures: list[str] = []
        # Failed trials are replaced until the count is met, within a failure allowance.
        max_failures = max(10, 2 * cfg.n_trials)
        round_no = 0
        while complete < cfg.n_trials:
            if failed > max_failures:
                logger.warning(
                    "sweep %s: stopping after %d failed trials (allowance %d); see the "
                    "doa.failure tags in MLflow",
                    cfg.name,
                    failed,
                    max_failures,
                )
                break
            round_no += 1
            missing = cfg.n_trials - complete
            metrics, modes = objectives_of(cfg)
            searcher = OptunaSearch(
                space=NumberedSpace(cfg),
                metric=metrics if cfg.multi_objective else metrics[0],
                mode=modes if cfg.multi_objective else modes[0],
                sampler=make_sampler(cfg, len(study.trials)),
                study_name=cfg.name,
                storage=storage,
            )
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=cfg.concurrency),
                    num_samples=missing,
                    metric="score",
                    mode="max",
                    reuse_actors=True,
                    scheduler=ASHAScheduler(grace_period=2, reduction_factor=3)
                    if cfg.asha
                    else None,
                ),
                run_config=tune.RunConfig(
                    name=f"{cfg.name}-round{len(study.trials)}",
                    storage_path=cfg.ray_storage,
                    failure_config=tune.FailureConfig(max_failures=cfg.retries),
                    verbose=0,
                    callbacks=[
                        _progress_callback(cfg.n_trials, study),
                        # The answer in the MLflow descriptions and artifacts, kept current.
                        summary_callback(cfg.tracking, cfg.task, cfg.name, parent),
                    ],
                ),
            )
            grid = tuner.fit()
            results = [grid[i] for i in range(len(grid))]
            failed += sum(1 for r in results if r.error is not None)
            # Runs whose process could not close them: a killed worker (FAILED, with Ray's
            # error) or a trial the scheduler stopped early (KILLED).
            errors = {
                _ray_trial_id(r): f"{type(r.error).__name__}: {r.error}"[:2000]
                for r in results
                if r.error is not None
            }
            failures += [_last_line(error) for error in errors.values()]
            tracker.close_stale_runs(
                parent,
                cfg.task,
                errors,
                reason="ended without a result: its worker was lost (the trial was retried) "
                "or the scheduler stopped it early",
            )
            study, complete = _study_state(cfg)
            logger.info("round %d: %d of %d trials finished", round_no, complete, cfg.n_trials)
            if any(MIXED_METRICS in reason for reason in failures):
                break  # every later trial would be scored with the other metric too
    except KeyboardInterrupt:
        # Nothing is left RUNNING: in-flight runs are closed as KILLED, and their Optuna
        # trials are failed (or completed, where the result had already been logged).
        tracker.close_stale_runs(parent, cfg.task)
        _recover_stale_trials(study, tracker, cfg)
        raise KeyboardInterrupt(
            f"sweep {cfg.name!r} interrupted; continue it with "
            f"`sweep run --name {cfg.name} --resume`"
        ) from None
    finally:
        _restore_sigterm(previous_sigterm)
        if started_ray:
            import ray

            ray.shutdown()
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(finished, key=lambda t: t.values[0]) if finished else None
    tracker.log(parent, metrics={"n_finished": complete, "n_failed": failed})
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
        complete,
        failed,
        None if best is None else best.values[0],
        {} if best is None else dict(best.params),
        parent,
        cfg.tracking,
        tuple(failures),
    )
