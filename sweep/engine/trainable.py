"""The function Ray runs for each trial: the sampled point's TrialConfig, every seed through
the objective, one MLflow child run, and the result combined over seeds for Tune."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import tune

from objectives.trial_config import Report, TrialConfig, TrialResult, trial_config
from search_spaces.spaces import SEARCHED_FIELDS
from sweep.config import SweepConfig
from sweep.engine.ray_hooks import report_intermediate
from sweep.tracking.mlflow_store import run_name, tracker_for
from sweep.tracking.optuna_store import check_study_metric
from sweep.tracking.schema import (
    TAG_BUDGET,
    TAG_MODE,
    TAG_SEED_LABELS,
    TAG_SWEEP,
    TAG_TRIAL_NUMBER,
    combine_seeds,
)

Objective = Callable[[TrialConfig, Report | None], TrialResult]

# Sampled names: the Optuna parameter name is the Ray config key is the MLflow param name.
SAMPLED = ("compute_fraction", "temperature", "budget_usd", "n_labels", "n_unlabelled")


def base_fields(cfg: SweepConfig, fraction: float, seed: int) -> dict[str, Any]:
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
    sampled = {k: config[k] for k in SEARCHED_FIELDS if k in config}
    base = trial_config(base_fields(cfg, 0.0, seed), cfg.preset)
    usd_per_label = base.prices(base.task_spec()).label_price(cfg.task)
    budget = cfg.mode.trial_budget_usd(config, cfg.budget_usd, usd_per_label)
    fields = {**base_fields(cfg, float(config.get("compute_fraction", 0.0)), seed), **sampled}
    fields["budget_usd"] = budget
    fields.update(cfg.mode.point_fields(config, budget))
    if "n_threads" not in fields:
        fields["n_threads"] = max(1, int(cfg.cpus_per_trial))
    if "n_devices" not in fields and fields["compute_fraction"] > 0 and cfg.teacher_gpus >= 2:
        fields["n_devices"] = int(cfg.teacher_gpus)  # shard over what it holds
    return fields


def trial_budget_usd(cfg: SweepConfig, config: Mapping[str, Any]) -> float:
    """A trial's budget B from its point: the sweep's, a searched one, or a grid point's."""
    return float(point_fields(cfg, config, 0)["budget_usd"])


def trial_compute_usd(cfg: SweepConfig, config: Mapping[str, Any]) -> float:
    """The most compute a trial's allocation may spend: f x B (a grid point: its allowance,
    where it distils); what `--max-spend` prices it at before it starts."""
    fields = point_fields(cfg, config, 0)
    return float(fields["compute_fraction"]) * float(fields["budget_usd"])


def failed_usd_per_second(cfg: SweepConfig) -> float:
    """What each second of a failed trial is charged to the sweep ledger: its devices at the
    sweep's price (nothing for stand-in objectives, which spend nothing real)."""
    if cfg.objective != "real":
        return 0.0
    base = trial_config(base_fields(cfg, 0.0, 0), cfg.preset)
    hourly = base.prices(base.task_spec()).usd_per_device_hour
    return hourly / 3600.0 * max(1, int(cfg.teacher_gpus))


def make_trainable(
    cfg: SweepConfig, objective: Objective, experiment_id: str, parent_run_id: str
) -> Callable[[dict[str, Any]], None]:
    """The function Ray runs for each trial (in any worker process)."""
    usd_per_second = failed_usd_per_second(cfg)

    def trainable(config: dict[str, Any]) -> None:
        started = time.monotonic()
        sampled = {k: config[k] for k in SAMPLED if k in config}
        seeds = list(range(cfg.seeds))
        first = point_fields(cfg, config, seeds[0])
        tracker = tracker_for(cfg.tracking)
        context = ray.get_runtime_context()
        default = run_name(cfg.task, first["budget_usd"], first["compute_fraction"], seeds)
        name = cfg.mode.run_name(cfg.task, config, default)
        run_id = tracker.start_trial_run(
            cfg.task,
            experiment_id,
            parent_run_id,
            name,
            params={**sampled, "seeds": len(seeds)},
            tags={
                TAG_SWEEP: cfg.name,
                TAG_MODE: cfg.mode.tag,
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
        pending: dict[str, dict[int, float]] = {}  # the last seed's score, logged with the result
        try:
            results = []
            for seed in seeds:
                fields = point_fields(cfg, config, seed)
                # Two objectives cannot be judged on a partial score: no intermediate reports.
                progress = None if cfg.multi_objective else report_intermediate
                result = objective(trial_config(fields, cfg.preset), progress)
                if seed == seeds[-1]:
                    pending = {"seed_score": {seed: result.score}}
                else:
                    tracker.log(run_id, metrics={"seed_score": result.score}, step=seed)
                results.append(result)
            summary = combine_seeds(results)
            check_study_metric(cfg, str(summary["metric"]), tracker, parent_run_id)
            numeric = {k: v for k, v in summary.items() if isinstance(v, int | float)}
            text = {k: v for k, v in summary.items() if isinstance(v, str)}
            tracker.log(run_id, metrics=numeric, tags=text, steps=pending)
            pending = {}
            tracker.end(run_id)
        except BaseException as exc:
            if pending:
                tracker.log(run_id, steps=pending)
            # What the failure cost is still spent (the sweep ledger; `--max-spend` counts it).
            failed_usd = (time.monotonic() - started) * usd_per_second
            tracker.log(run_id, metrics={"sweep_spent_usd": failed_usd})
            tracker.fail(run_id, f"{type(exc).__name__}: {exc}")
            raise
        tune.report({**summary, "stage": "final", "mlflow_run_id": run_id})

    return trainable
