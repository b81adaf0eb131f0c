"""What a user of the MLflow UI finds without configuring it: experiments that open on their
runs, a saved view of the trials, and the sweep's answer in the descriptions and artifacts."""

from __future__ import annotations

import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from mlflow.tracking import MlflowClient

from objectives.standins import synthetic_trial
from objectives.trial_config import Report, TrialConfig, TrialResult
from sweep.cli import ui
from sweep.decide import summary
from sweep.engine.tuner import run_sweep
from sweep.tracking.mlflow_store import (
    MODEL_TRAINING,
    TAG_EXPERIMENT_KIND,
    TAG_NOTE,
    TAG_VIEW,
    VIEW_COLUMNS,
    Tracker,
    experiment_name,
    runs_url,
    runs_view,
)
from sweep.tracking.results import BestAllocation, TrialRow
from sweep.tracking.schema import (
    TAG_BUDGET,
    TAG_SEED_LABELS,
    TAG_SWEEP,
)
from tests.sweep_tests.conftest import synthetic_config

cloudpickle.register_pickle_by_value(__import__(__name__))

SORTABLE = {"score", "score_low", "score_high", "compute_fraction", "practitioner_usd"}
SORTABLE |= {"sweep_spent_usd"}


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_new_experiment_opens_on_its_runs(tmp_path: Path) -> None:
    tracker = Tracker(_uri(tmp_path))
    experiment = tracker.experiment_id("fever")
    tags = MlflowClient(tracker.tracking_uri).get_experiment(experiment).tags
    assert tags[TAG_EXPERIMENT_KIND] == MODEL_TRAINING == "custom_model_development"
    view = json.loads(tags[TAG_VIEW])
    assert view["name"] == "Trials by score"
    state = json.loads(view["state"])
    assert state == runs_view() and state["orderByKey"] == "metrics.`score`"
    assert state["groupBy"] == f"tag.average.{TAG_SWEEP}"
    assert {c.split("`")[1] for c in VIEW_COLUMNS if c.startswith("metrics.")} == SORTABLE
    assert runs_url("http://h:5/", experiment) == (
        f"http://h:5/#/experiments/{experiment}/runs"
        "?workflowType=machine_learning&viewStateShareKey=trials-by-score"
    )


def test_an_experiment_of_an_older_version_is_marked_once(tmp_path: Path) -> None:
    client = MlflowClient(_uri(tmp_path))
    experiment = client.create_experiment(experiment_name("fever"))
    tracker = Tracker(_uri(tmp_path))
    assert tracker.experiment_id("fever") == experiment
    marked = client.get_experiment(experiment).tags
    assert marked[TAG_EXPERIMENT_KIND] == MODEL_TRAINING
    tracker.experiment_id("fever")
    assert client.get_experiment(experiment).tags[TAG_VIEW] == marked[TAG_VIEW]  # not rewritten


def test_sweep_ui_links_each_task_to_its_runs(tmp_path: Path) -> None:
    tracker = Tracker(_uri(tmp_path))
    ids = {task: tracker.experiment_id(task) for task in ("fever", "nq")}
    links = ui.runs_urls(tracker, ui.server_url("0.0.0.0", 5000))
    assert links == {t: runs_url("http://127.0.0.1:5000", i) for t, i in ids.items()}
    assert list(ui.runs_urls(tracker, "http://x", "nq")) == ["nq"]
    with pytest.raises(ValueError, match="No sweep of task 'sst2'.*fever, nq"):
        ui.runs_urls(tracker, "http://x", "sst2")


def _trial(
    tracker: Tracker, parent: str, fraction: float, metrics: dict[str, float], budget: float = 300
) -> None:
    experiment = tracker.experiment_id("fever")
    name = f"fever/B={budget:g}/f={fraction:.2f}/seed=0"
    tags = {TAG_SWEEP: "s", TAG_BUDGET: f"{budget:g}", TAG_SEED_LABELS: 1000}
    run = tracker.start_trial_run(
        "fever", experiment, parent, name, {"compute_fraction": fraction}, tags
    )
    strategy = "annotate" if fraction == 0 else "mixed"
    tracker.log(run, metrics={"compute_fraction": fraction, **metrics}, tags={"strategy": strategy})
    tracker.end(run)


def test_the_parent_and_the_experiment_state_the_answer(tmp_path: Path) -> None:
    tracker = Tracker(_uri(tmp_path))
    parent = tracker.start_sweep_run("fever", "s", {"budget_usd": 300})
    ledgers = {"practitioner_usd": 300.0, "sweep_spent_usd": 0.5, "n_new_labels": 2325.0}
    _trial(tracker, parent, 0.0, {"score": 0.70, "score_low": 0.68, "score_high": 0.72, **ledgers})
    mixed = {**ledgers, "n_new_labels": 1395.0, "n_unlabelled": 5120.0}
    _trial(tracker, parent, 0.4, {"score": 0.80, "score_low": 0.78, "score_high": 0.82, **mixed})
    _trial(tracker, parent, 0.9, {"score": 0.75, "score_low": 0.73, "score_high": 0.77, **mixed})
    name, experiment = "fever/B=300/f=1.00/seed=0", tracker.experiment_id("fever")
    failed = tracker.start_trial_run("fever", experiment, parent, name, {}, {TAG_SWEEP: "s"})
    tracker.fail(failed, "RuntimeError: boom")

    text = summary.refresh(tracker, "fever", "s", parent)

    assert text.startswith("**B = $300: spend 40 % on compute**, score 0.800 (0.780–0.820)")
    assert "against 0.700 (0.680–0.720) annotating only (+0.100, beyond both intervals)" in text
    assert "3 finished trials; deciding cost **$1.50** of device time" in text
    client = MlflowClient(tracker.tracking_uri)
    assert client.get_run(parent).data.tags[TAG_NOTE] == text
    assert client.get_experiment(tracker.experiment_id("fever")).tags[TAG_NOTE] == text
    names = {a.path for a in client.list_artifacts(parent, "summary")}
    plots = {"fever_score_vs_fraction.png", "fever_pareto.png", "fever_history.png"}
    assert names == {f"summary/{n}" for n in (*plots, "best.txt")}
    table = Path(client.download_artifacts(parent, "summary/best.txt", str(tmp_path)))
    assert "0.400" in table.read_text() and "[0.7800, 0.8200]" in table.read_text()


def _row(**values: Any) -> TrialRow:
    required = [f.name for f in fields(TrialRow) if f.default is MISSING]
    defaults: dict[str, Any] = dict.fromkeys(required, 0)
    defaults.update(run_id="r", sweep="s", task="fever", budget_usd=300.0, strategy="mixed")
    return TrialRow(**{**defaults, "n_seeds": 1, **values})


def _best(row: TrialRow, **values: Any) -> BestAllocation:
    names = {f.name for f in fields(BestAllocation)}
    shared = {k: v for k, v in row.__dict__.items() if k in names}
    return BestAllocation(**{**shared, "n_trials": 2, **values})


def test_annotate_only_as_the_answer_names_the_best_split_with_compute() -> None:
    annotate = _row(compute_fraction=0.0, score=0.9, n_new_labels=2325, n_seed_labels=1000)
    mixed = _row(compute_fraction=0.5, score=0.8, score_low=0.7, score_high=0.85)
    text = summary.paragraph("fever", "s", [annotate, mixed], [_best(annotate)])
    assert text.startswith("**B = $300: annotate only**, score 0.900 (no interval)")
    assert "the best split with compute (f = 0.50) scores 0.800 (0.700–0.850)" in text
    assert "buys 2,325 labels to add to the 1,000 owned" in text


def test_a_split_without_an_annotate_only_trial_says_so() -> None:
    mixed = _row(compute_fraction=0.5, score=0.8, sweep_spent_usd=2.25)
    text = summary.paragraph("fever", "s", [mixed], [_best(mixed)])
    assert "spend 50 % on compute**, score 0.800 (no interval); annotate only (f = 0) has" in text
    assert "deciding cost **$2.25**" in text


def test_a_grid_names_its_best_point_and_its_best_without_compute() -> None:
    rows = [
        _row(grid=True, n_labels_used=100, n_unlabelled=0, score=0.6, practitioner_usd=13),
        _row(grid=True, n_labels_used=100, n_unlabelled=1000, score=0.7, practitioner_usd=20),
        _row(grid=True, n_labels_used=200, n_unlabelled=0, score=0.65, practitioner_usd=26),
    ]
    text = summary.paragraph("fever", "g", rows, [])
    assert text.startswith("**Grid: 100 labels + 1,000 unlabelled** ($20.00")
    assert "annotating only, the best is 200 labels ($26.00), score 0.650" in text


def _fails_once(marks: str) -> Any:
    def objective(cfg: TrialConfig, report: Report | None = None) -> TrialResult:
        mark = Path(marks) / f"{cfg.compute_fraction:.3f}"
        if cfg.compute_fraction == 1.0 and not mark.exists():
            mark.touch()
            raise RuntimeError("fails once")
        return synthetic_trial(cfg, report)

    return objective


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_every_kind_of_trial_logs_the_columns_of_the_view(tmp_path: Path) -> None:
    """Annotation only, distillation, a trial retried after a failure and grid points all
    carry the metrics the saved view sorts by, under the same names."""
    (tmp_path / "marks").mkdir()
    # The previous search's f = 0, 1, 0.5: annotate only, distill only and a mix.
    budget = synthetic_config(tmp_path, n_trials=3, retries=1, sampler="tpe")
    run_sweep(budget, objective=_fails_once(str(tmp_path / "marks")))
    grid = {"name": "grid", "budget_usd": 0.0, "n_seed_labels": 0, "n_trials": 4}
    grid_points = {"grid_labels": [1, 2], "grid_unlabelled": [0, 10]}
    run_sweep(synthetic_config(tmp_path, **grid, **grid_points, compute_allowance_usd=300.0))
    tracker = Tracker(budget.tracking)
    finished = tracker.trial_runs(task="fever")
    assert len(finished) == 7
    assert {r.data.tags["strategy"] for r in finished} >= {"annotate", "distill"}
    for run in finished:
        assert set(run.data.metrics) >= SORTABLE, run.info.run_name
    assert len(tracker.trial_runs(task="fever", sweep="syn", status="FAILED")) == 1
    client = MlflowClient(budget.tracking)
    notes = {
        s: client.get_run(tracker.find_sweep_run("fever", s) or "").data.tags[TAG_NOTE]
        for s in ("syn", "grid")
    }
    assert notes["syn"].startswith("**B = $300:") and notes["grid"].startswith("**Grid:")


def test_a_sweep_over_budgets_names_its_best_trial_and_its_front() -> None:
    rows = [
        _row(budget_usd=50, compute_fraction=0.0, score=0.7, practitioner_usd=50),
        _row(budget_usd=120, compute_fraction=0.6, score=0.8, practitioner_usd=110),
        _row(budget_usd=400, compute_fraction=0.9, score=0.75, practitioner_usd=390),
    ]
    uri = "sqlite:////my runs/mlflow.db"
    text = summary.paragraph("fever", "b", rows, [_best(r) for r in rows], uri)
    assert text.startswith("**Budgets tried $50–$400: the best score, 0.800 (no interval)")
    # The command it names reads this store, as printed (the path quoted).
    assert (
        "`sweep best --task fever --pareto --tracking-uri 'sqlite:////my runs/mlflow.db'`" in text
    )
    assert "spends 60 % of B = $120 on compute**; annotating only, the best is 0.700" in text
    assert "The cost/quality front has 2 trials, from 0.700 for $50" in text


def test_a_browser_is_opened_only_where_a_display_is_at_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not ui.display_at_hand()  # webbrowser would start lynx in the server's terminal
    monkeypatch.setenv("DISPLAY", ":0")
    assert ui.display_at_hand()


def test_a_new_store_is_a_copy_of_a_migrated_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema migrations run once per MLflow version; each store still gets its own
    default experiment, and SQLite stores commit in WAL mode."""
    import sqlite3

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = Tracker(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
    assert list((tmp_path / "cache" / "distill-or-annotate").glob("mlflow-*-empty.db"))
    second = Tracker(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    for tracker, folder in ((first, "a"), (second, "b")):
        assert [e.name for e in tracker.client.search_experiments()] == ["Default"]
        parent = tracker.start_sweep_run("fever", "s", {"x": 1})
        assert tracker.find_sweep_run("fever", "s") == parent
        db = sqlite3.connect(tmp_path / folder / "mlflow.db")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
