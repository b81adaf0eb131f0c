"""The MLflow layout; the only module that talks to MLflow.

- one experiment per task: `distill-or-annotate/<task>`;
- one parent run per sweep (its resolved config as params), found again by its tag on resume;
- one child run per trial, created with an explicit `mlflow.parentRunId` so it works from
  any Ray worker, named like `fever/B=300/f=0.42/seed=0`, with the Optuna parameter names as
  params, both ledgers as metrics, strategy and cache outcome as tags.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)
# MLflow logs every schema migration of a new SQLite store at INFO; keep the console clean.
logging.getLogger("mlflow").setLevel(logging.WARNING)

EXPERIMENT_PREFIX = "distill-or-annotate/"
T = TypeVar("T")

# MLflow's limits: 100 params / 1000 metrics / 100 tags per batch, 6000 chars per param.
_MAX_PARAM_CHARS = 6000
_BATCH = 100

TAG_KIND = "doa.kind"  # "sweep" or "trial"
TAG_SWEEP = "doa.sweep"
TAG_TASK = "doa.task"
TAG_BUDGET = "doa.budget_usd"
TAG_SEED_LABELS = "doa.n_seed_labels"
TAG_MODE = "doa.mode"  # "budget" (a fraction of a budget) or "grid" (labelled x unlabelled)
TAG_TRIAL_NUMBER = "optuna.trial_number"
TAG_FAILURE = "doa.failure"


def experiment_name(task: str) -> str:
    return EXPERIMENT_PREFIX + task


def retry(call: Callable[[], T], attempts: int = 8) -> T:
    """Retry a store call that hit SQLite's writer lock; other errors pass through."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys, values as strings cut to MLflow's length limit."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif value is not None:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_MAX_PARAM_CHARS]
    return out


def run_name(task: str, budget_usd: float, fraction: float, seeds: Iterable[int]) -> str:
    seed_list = list(seeds)
    seed_part = f"seed={seed_list[0]}" if len(seed_list) == 1 else f"seeds={len(seed_list)}"
    return f"{task}/B={budget_usd:g}/f={fraction:.2f}/{seed_part}"


class Tracker:
    """Thin, retrying wrapper over MlflowClient for one tracking URI."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    def experiment_id(self, task: str) -> str:
        name = experiment_name(task)
        found = retry(lambda: self.client.get_experiment_by_name(name))
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(retry(lambda: self.client.create_experiment(name)))
        except Exception:  # created meanwhile by another driver
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def find_sweep_run(self, task: str, sweep: str) -> str | None:
        found = retry(lambda: self.client.get_experiment_by_name(experiment_name(task)))
        if found is None:
            return None
        runs = retry(
            lambda: self.client.search_runs(
                [found.experiment_id],
                f"tags.`{TAG_KIND}` = 'sweep' and tags.`{TAG_SWEEP}` = '{sweep}'",
                max_results=1,
            )
        )
        return str(runs[0].info.run_id) if runs else None

    def start_sweep_run(self, task: str, sweep: str, config: Mapping[str, Any]) -> str:
        experiment = self.experiment_id(task)
        tags = {TAG_KIND: "sweep", TAG_SWEEP: sweep, TAG_TASK: task, "mlflow.runName": sweep}
        run = retry(lambda: self.client.create_run(experiment, tags=tags, run_name=sweep))
        run_id = str(run.info.run_id)
        self.log(run_id, params=flatten(config))
        return run_id

    def start_trial_run(
        self,
        task: str,
        experiment_id: str,
        parent_run_id: str,
        name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
    ) -> str:
        all_tags = {
            "mlflow.parentRunId": parent_run_id,
            "mlflow.runName": name,
            TAG_KIND: "trial",
            TAG_TASK: task,
            **{k: str(v) for k, v in tags.items()},
        }
        run = retry(lambda: self.client.create_run(experiment_id, tags=all_tags, run_name=name))
        run_id = str(run.info.run_id)
        self.log(run_id, params=flatten(params))
        return run_id

    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        now = int(time.time() * 1000)
        metric_rows = [
            Metric(k, float(v), now, step)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        param_rows = [Param(k, v) for k, v in (params or {}).items()]
        tag_rows = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metric_rows), len(param_rows), len(tag_rows), 1), _BATCH):
            m = metric_rows[start : start + _BATCH]
            p = param_rows[start : start + _BATCH]
            t = tag_rows[start : start + _BATCH]
            if m or p or t:
                retry(lambda m=m, p=p, t=t: self.client.log_batch(run_id, m, p, t))  # type: ignore[misc]

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        retry(lambda: self.client.set_terminated(run_id, status))

    def fail(self, run_id: str, reason: str, status: str = "FAILED") -> None:
        self.log(run_id, tags={TAG_FAILURE: reason[:4000]})
        self.end(run_id, status)

    def trial_runs(
        self,
        task: str | None = None,
        sweep: str | None = None,
        parent_run_id: str | None = None,
        status: str | None = "FINISHED",
    ) -> list[Any]:
        """Trial runs of the store, optionally of one task, sweep or parent."""
        experiments = retry(lambda: self.client.search_experiments())
        ids = [
            e.experiment_id
            for e in experiments
            if e.name.startswith(EXPERIMENT_PREFIX)
            and (task is None or e.name == experiment_name(task))
        ]
        if not ids:
            return []
        query = [f"tags.`{TAG_KIND}` = 'trial'"]
        if sweep is not None:
            query.append(f"tags.`{TAG_SWEEP}` = '{sweep}'")
        if parent_run_id is not None:
            query.append(f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
        if status is not None:
            query.append(f"attributes.status = '{status}'")
        runs: list[Any] = []
        token = None
        while True:
            page = retry(
                lambda token=token: self.client.search_runs(  # type: ignore[misc]
                    ids, " and ".join(query), max_results=1000, page_token=token
                )
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def close_stale_runs(
        self,
        parent_run_id: str,
        task: str,
        errors: Mapping[str, str] | None = None,
        reason: str = "interrupted: the sweep driver stopped",
    ) -> int:
        """Close trial runs left RUNNING by a process that can no longer close them.

        A run whose Ray trial id has an error in `errors` (its worker died: SIGKILL, the OOM
        killer) becomes FAILED with that error; any other becomes KILLED with `reason`.
        """
        stale = self.trial_runs(task=task, parent_run_id=parent_run_id, status="RUNNING")
        for run in stale:
            error = (errors or {}).get(run.data.tags.get("ray.trial_id", ""))
            if error is not None:
                self.fail(run.info.run_id, f"worker died: {error}", status="FAILED")
            else:
                self.fail(run.info.run_id, reason, status="KILLED")
        return len(stale)

    def log_artifact(self, run_id: str, path: str) -> None:
        retry(lambda: self.client.log_artifact(run_id, path))
