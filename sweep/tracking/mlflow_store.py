"""The MLflow layout; the only module that talks to MLflow.

- one experiment per task: `distill-or-annotate/<task>`;
- one parent run per sweep (its resolved config as params), found again by its tag on resume;
- one child run per trial, created with an explicit `mlflow.parentRunId` so it works from
  any Ray worker, named like `fever/B=300/f=0.42/seed=0`, with the Optuna parameter names as
  params, both ledgers as metrics, strategy and cache outcome as tags.

The UI opens on that layout without configuring it: each experiment is marked as model
training (MLflow 3's UI otherwise opens on its GenAI overview) and carries a saved view of
its runs, grouped by sweep, sorted by score, showing the score, its interval and the
dollars; `runs_url` links to it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sweep.config import artifact_root, store_path
from sweep.tracking.schema import (
    TAG_FAILURE,
    TAG_KIND,
    TAG_SWEEP,
    TAG_TASK,
)
from sweep.tracking.sqlite import check_store, fast_sqlite, read_only, sqlite_uri, store_lock

logger = logging.getLogger(__name__)
# MLflow logs every schema migration of a new SQLite store at INFO; keep the console clean.
logging.getLogger("mlflow").setLevel(logging.WARNING)

EXPERIMENT_PREFIX = "distill-or-annotate/"
T = TypeVar("T")

# MLflow's limits: 100 params / 1000 metrics / 100 tags per batch, 6000 chars per param.
_MAX_PARAM_CHARS = 6000
_BATCH = 100


# MLflow's own tags. The UI renders `mlflow.note.content` (markdown) as the description of
# an experiment or a run. `mlflow.experimentKind` says what an experiment is for: MLflow
# 3.17's UI reads the kind from its GenAI / Model training switch (the `workflowType` URL
# parameter, else the browser's last choice, GenAI at first), and other versions and tools
# read the tag; `runs_url` sets the switch, the tag keeps the kind with the data.
TAG_NOTE = "mlflow.note.content"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
WORKFLOW_MODEL_TRAINING = "machine_learning"
# A saved view of the runs table: MLflow 3.17 lists experiment tags with this prefix under
# "Views" and opens one from the URL parameter `viewStateShareKey`.
VIEW_KEY = "trials-by-score"
VIEW_NAME = "Trials by score"
TAG_VIEW = f"mlflow.sharedViewState.{VIEW_KEY}"
# The columns a user sorts by, in this order; every finished trial logs them under these
# names (an absent interval shows as "-").
VIEW_COLUMNS = (
    "metrics.`score`",
    "metrics.`score_low`",
    "metrics.`score_high`",
    "metrics.`compute_fraction`",
    "metrics.`practitioner_usd`",
    "metrics.`sweep_spent_usd`",
    "tags.`strategy`",
)


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


def runs_view() -> dict[str, Any]:
    """The runs table's state in MLflow 3.17's saved-view format: trials grouped by their
    sweep (child runs are otherwise folded under the parent), best score first."""
    return {
        "orderByKey": "metrics.`score`",
        "orderByAsc": False,
        "selectedColumns": list(VIEW_COLUMNS),
        "columnOrder": ["tags.`mlflow.runName`", *VIEW_COLUMNS],
        "groupBy": f"tag.average.{TAG_SWEEP}",  # mode.aggregate.key, as the UI parses it
    }


def _view_envelope(now_ms: int) -> str:
    """The saved view as MLflow 3.17 stores one: a name, dates and the state as JSON."""
    state = json.dumps(runs_view(), sort_keys=True)
    return json.dumps({"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": state})


def _view_is_current(value: str | None) -> bool:
    try:
        envelope = json.loads(value or "")
        return bool(envelope["name"] == VIEW_NAME and json.loads(envelope["state"]) == runs_view())
    except (ValueError, KeyError, TypeError):
        return False


def experiment_marks(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags an experiment with `tags` still needs so that the UI opens on its runs."""
    missing = {}
    if tags.get(TAG_EXPERIMENT_KIND) != MODEL_TRAINING:
        missing[TAG_EXPERIMENT_KIND] = MODEL_TRAINING
    if not _view_is_current(tags.get(TAG_VIEW)):
        missing[TAG_VIEW] = _view_envelope(int(time.time() * 1000))
    return missing


def runs_url(server_url: str, experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI at `server_url`, in the saved view."""
    query = f"workflowType={WORKFLOW_MODEL_TRAINING}&viewStateShareKey={VIEW_KEY}"
    return f"{server_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_name(task: str, budget_usd: float, fraction: float, seeds: Iterable[int]) -> str:
    seed_list = list(seeds)
    seed_part = f"seed={seed_list[0]}" if len(seed_list) == 1 else f"seeds={len(seed_list)}"
    return f"{task}/B={budget_usd:g}/f={fraction:.2f}/{seed_part}"


def seed_new_store(tracking_uri: str) -> None:
    """A new SQLite store starts as a copy of an empty one MLflow migrated earlier (one per
    MLflow version, in the user's cache): its ~50 schema migrations take seconds. MLflow then
    adds its default experiment, as to any empty store. Any failure leaves it to MLflow."""
    import shutil
    import sqlite3
    import tempfile
    from pathlib import Path

    import mlflow

    path = store_path(tracking_uri)
    if path is None or path.exists() or ":memory:" in str(path):
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distill-or-annotate"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    try:
        if not template.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                fresh = Path(tmp) / "empty.db"
                MlflowClient(f"sqlite:///{fresh}")._tracking_client.store.engine.dispose()
                db = sqlite3.connect(fresh)
                db.execute("DELETE FROM experiment_tags")
                db.execute("DELETE FROM experiments")
                db.commit()
                db.close()
                os.replace(fresh, template)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.new")
        shutil.copyfile(template, partial)
        try:
            os.link(partial, path)  # never over a store another process created meanwhile
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    except (OSError, sqlite3.Error):
        logger.debug("no template for a new MLflow store", exc_info=True)


_PER_PROCESS: dict[str, Tracker] = {}


def tracker_for(tracking_uri: str) -> Tracker:
    """This process's Tracker of `tracking_uri`: a Ray worker sets its MLflow client (and
    its store's connection pool) up once, not once per trial."""
    found = _PER_PROCESS.get(tracking_uri)
    if found is None:
        found = _PER_PROCESS[tracking_uri] = Tracker(tracking_uri)
    return found


class Tracker:
    """Thin, retrying wrapper over MlflowClient for one tracking URI. A local store that is
    not whole is refused in one line before anything touches it; one in a folder this
    process cannot write is read as it is (queries work there) and refuses every write."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        path = store_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
        self.read_only = path is not None and read_only(path)
        # One process at a time creates (or migrates) a new local store and its default
        # experiment: sweeps started at once on a new root would otherwise race.
        with store_lock(path):
            check_store(path, "MLflow store", "experiments")
            seed_new_store(tracking_uri)
            # What the client (and `sweep ui`'s server) opens: a read-only store's copy.
            self.backend_uri = sqlite_uri(path) if path is not None else tracking_uri
            self.client = MlflowClient(tracking_uri=self.backend_uri)
            if path is not None and not self.read_only:  # its engine is made here, locked
                fast_sqlite(self.client._tracking_client.store.engine)

    def _writable(self) -> None:
        if self.read_only:
            raise ValueError(
                f"The MLflow store {self.tracking_uri} is in a folder this process cannot "
                "write: it can be read (`sweep best`, `sweep frontier`), not written; copy "
                "the folder somewhere writable to add to it."
            )

    def experiment_id(self, task: str) -> str:
        """The task's experiment, created (or, made by an older version, brought up to
        date) with the marks that make the UI open on its runs."""
        name = experiment_name(task)
        found = retry(lambda: self.client.get_experiment_by_name(name))
        if found is not None:
            if not self.read_only:
                self._mark(str(found.experiment_id), found.tags)
            return str(found.experiment_id)
        self._writable()
        try:
            location = artifact_root(self.tracking_uri)
            return str(
                retry(
                    lambda: self.client.create_experiment(
                        name, artifact_location=location, tags=experiment_marks({})
                    )
                )
            )
        except Exception:  # created meanwhile by another driver
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            self._mark(str(again.experiment_id), again.tags)
            return str(again.experiment_id)

    def _mark(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        for key, value in experiment_marks(tags).items():
            retry(
                lambda key=key, value=value: self.client.set_experiment_tag(  # type: ignore[misc]
                    experiment_id, key, value
                )
            )

    def experiments(self) -> dict[str, str]:
        """Task -> experiment id of the store's experiments, most recently used first."""
        found = retry(lambda: self.client.search_experiments(order_by=["last_update_time DESC"]))
        return {
            e.name.removeprefix(EXPERIMENT_PREFIX): str(e.experiment_id)
            for e in found
            if e.name.startswith(EXPERIMENT_PREFIX)
        }

    def describe(self, run_id: str, markdown: str) -> None:
        """The run's description in the UI."""
        self.log(run_id, tags={TAG_NOTE: markdown})

    def describe_experiment(self, experiment_id: str, markdown: str) -> None:
        """The experiment's description, shown above its runs table."""
        self._writable()
        retry(lambda: self.client.set_experiment_tag(experiment_id, TAG_NOTE, markdown))

    def reopen(self, run_id: str) -> None:
        """A resumed sweep's parent run is RUNNING again."""
        self._writable()
        retry(lambda: self.client.update_run(run_id, "RUNNING"))

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
        self._writable()
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
        self._writable()
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
        steps: Mapping[str, Mapping[int, float]] | None = None,
    ) -> None:
        """One write (per MLflow batch limit) of metrics at `step`, metric histories
        (`steps`: name -> step -> value), params and tags."""
        self._writable()
        now = int(time.time() * 1000)
        metric_rows = [
            Metric(k, float(v), now, step)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        metric_rows += [
            Metric(k, float(v), now, i)
            for k, series in (steps or {}).items()
            for i, v in series.items()
        ]
        param_rows = [Param(k, v) for k, v in (params or {}).items()]
        tag_rows = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metric_rows), len(param_rows), len(tag_rows), 1), _BATCH):
            m = metric_rows[start : start + _BATCH]
            p = param_rows[start : start + _BATCH]
            t = tag_rows[start : start + _BATCH]
            if m or p or t:
                retry(lambda m=m, p=p, t=t: self.client.log_batch(run_id, m, p, t))  # type: ignore[misc]

    def delete(self, run_id: str) -> None:
        """Remove a run that stands for nothing (a sweep that could not start); MLflow keeps
        it as deleted, out of every search and of the UI."""
        self._writable()
        retry(lambda: self.client.delete_run(run_id))

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self._writable()
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

    def log_artifact(self, run_id: str, path: str, folder: str | None = None) -> None:
        """Copy a file into the run's artifacts (under `folder`), replacing one of its name."""
        self._writable()
        retry(lambda: self.client.log_artifact(run_id, path, folder))
