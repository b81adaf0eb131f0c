"""Benchmark 1: orchestration overhead per trial, against the set-ups users would write.

The same cheap objective (the synthetic stand-in plus `--work-seconds` of sleep) runs
`--trials` times through:
  (a) ours: `sweep.engine.tuner.run_sweep` (Ray Tune + Optuna + MLflow SQLite, our defaults);
  (b) a plain Optuna `study.optimize` loop (no Ray, no MLflow): the floor;
  (c) stock Ray Tune + `OptunaSearch` + `MLflowLoggerCallback` with default settings.
Overhead per trial = (wall time - trials x work) / trials, Ray's start-up included for (a)
and (c). The last line is the ratio of (a)'s overhead to (c)'s (target: (a) <= 0.1 s per
trial at 40 trials of 0.5 s). Run it at 400 trials too (a smaller `--work-seconds` keeps that
short): start-up costs shrink per trial there, per-trial costs stay.

    python bench/orchestration.py [--trials 40] [--work-seconds 0.5]
    python bench/orchestration.py --trials 400 --work-seconds 0.1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _objective_score(fraction: float, work_seconds: float) -> float:
    from objectives.standins import synthetic_trial
    from objectives.trial_config import trial_config

    cfg = trial_config(
        {"task": "fever", "budget_usd": 300.0, "n_seed_labels": 1000, "compute_fraction": fraction}
    )
    return synthetic_trial(cfg, work_seconds=work_seconds).score


def ours(root: Path, trials: int, work: float) -> float:
    from sweep.config import SweepConfig
    from sweep.engine.tuner import run_sweep

    started = time.perf_counter()
    run_sweep(
        SweepConfig(
            name="bench",
            task="fever",
            budget_usd=300.0,
            n_seed_labels=1000,
            n_trials=trials,
            objective="synthetic",
            standin_work_seconds=work,
            root=str(root),
        ),
        out=open(os.devnull, "w"),  # noqa: SIM115
    )
    return time.perf_counter() - started


def plain_optuna(trials: int, work: float) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(direction="maximize")
    study.optimize(
        lambda t: _objective_score(t.suggest_float("compute_fraction", 0, 1), work),
        n_trials=trials,
    )
    return time.perf_counter() - started


def stock_ray_tune(root: Path, trials: int, work: float) -> float:
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"score": _objective_score(config["compute_fraction"], work)})

    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, _temp_dir="/tmp/doa-bench-ray")
    try:
        tune.Tuner(
            trainable,
            param_space={"compute_fraction": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(), metric="score", mode="max", num_samples=trials
            ),
            run_config=tune.RunConfig(
                storage_path=str(root / "ray"),
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{root / 'm.db'}", experiment_name="bench"
                    )
                ],
                verbose=0,
            ),
        ).fit()
    finally:
        ray.shutdown()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--work-seconds", type=float, default=0.5)
    parser.add_argument("--tiny", action="store_true", help="3 trials of 0.05 s (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.work_seconds = 3, 0.05
    work = args.trials * args.work_seconds
    with tempfile.TemporaryDirectory() as tmp:
        walls = {
            "(a) ours: sweep run": ours(Path(tmp) / "a", args.trials, args.work_seconds),
            "(b) plain Optuna": plain_optuna(args.trials, args.work_seconds),
            "(c) stock Ray Tune + OptunaSearch + MLflowLoggerCallback": stock_ray_tune(
                Path(tmp) / "c", args.trials, args.work_seconds
            ),
        }
    overhead = {name: (wall - work) / args.trials for name, wall in walls.items()}
    for name, wall in walls.items():
        print(f"{name}: wall {wall:.1f} s, overhead {overhead[name]:.3f} s/trial")
    ratio = (
        overhead["(a) ours: sweep run"]
        / overhead["(c) stock Ray Tune + OptunaSearch + MLflowLoggerCallback"]
    )
    print(f"overhead per trial, ours / stock Ray Tune: {ratio:.2f}")


if __name__ == "__main__":
    main()
