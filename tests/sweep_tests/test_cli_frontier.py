"""`sweep grid`, `sweep frontier`, budget-aware search and warm starts, as users type them,
through real Ray Tune, Optuna and MLflow on the closed-form stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from objectives.standins import synthetic_trial
from objectives.trial_config import TrialConfig
from sweep.cli.main import main
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.schema import TAG_BUDGET, TAG_MODE
from tests.conftest import SWEEP_RUN

pytestmark = pytest.mark.usefixtures("ray_session")

SYNTHETIC = ["--task", "fever", "--objective", "synthetic"]


def _root(tmp_path: Path) -> list[str]:
    return ["--root", str(tmp_path)]


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def test_grid_runs_every_point_once_and_marks_the_pareto_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = ["grid", *SYNTHETIC, "--labels", "100,1000", "--unlabelled", "0,3000"]
    grid += ["--compute-allowance", "500"]
    out = tmp_path / "plots"
    assert main([*grid, "--out", str(out), *_root(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert table.count("\n100 ") + table.count("\n1000 ") == 4 and "*" in table
    assert (out / "fever-grid.png").is_file()
    runs = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}").trial_runs(task="fever")
    points = {(int(r.data.metrics["n_labels_used"]), r.data.metrics["n_unlabelled"]) for r in runs}
    assert points == {(100, 0.0), (100, 3000.0), (1000, 0.0), (1000, 3000.0)}
    for run in runs:
        m = run.data.metrics
        assert run.data.tags[TAG_MODE] == "grid"
        assert m["annotation_usd"] == pytest.approx(m["n_new_labels"] * 0.129)
        assert m["practitioner_usd"] == pytest.approx(m["annotation_usd"] + m["compute_spent_usd"])
        assert m["compute_spent_usd"] <= m["compute_usd"] <= 500.0
    # The allowance is recorded under its own name; each point's budget is its own.
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = tracker.client.get_run(tracker.find_sweep_run("fever", "fever-grid") or "")
    assert parent.data.params["compute_allowance_usd"] == "500.0"
    assert "budget_usd" not in parent.data.params
    budgets = {run.data.tags[TAG_BUDGET] for run in runs}
    assert budgets == {"12.9", "512.9", "129", "629"}  # labels, plus 500 with unlabelled
    # A grid point is no choice within a budget: `best` leaves it out, `report` plots it.
    assert main(["best", *_root(tmp_path)]) == 1
    assert main(["report", "--task", "fever", "--out", str(out), *_root(tmp_path)]) == 0
    assert (out / "fever_grid.png").is_file()
    # Resuming a finished grid (its allowance kept) runs nothing again.
    assert main(["grid", "--name", "fever-grid", "--resume", *_root(tmp_path)]) == 0
    assert len(_study(tmp_path, "fever-grid").trials) == 4


def test_frontier_recommends_a_near_optimal_split_for_a_budget_never_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for budget in ("30", "60", "120"):
        args = [*SYNTHETIC, "--budget", budget, "--seed-labels", "100", "--trials", "8"]
        assert main(["run", *args, *_root(tmp_path)]) == 0
    capsys.readouterr()
    out = tmp_path / "plots"
    assert (
        main(
            [
                "frontier",
                "--task",
                "fever",
                "--budgets",
                "80,400",
                "--json",
                "--out",
                str(out),
                *_root(tmp_path),
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"]["n_trials"] == 24
    assert answer["model"]["held_out"]["mae"] < answer["model"]["held_out"]["baseline_mae"]
    inside, outside = answer["budgets"]
    assert inside["inside"] and not outside["inside"]
    assert inside["spent_usd"] <= 80 + 1e-9

    # The landscape's own best split at $80, by a dense scan, against the recommended one.
    def score(fraction: float) -> float:
        cfg = TrialConfig("fever", 80.0, 100, fraction)
        return synthetic_trial(cfg).score

    best = max(score(f / 100) for f in range(101))
    assert score(inside["compute_fraction"]) >= 0.99 * best
    assert Path(answer["plot"]).is_file()


def test_frontier_answers_from_a_few_trials_and_refuses_only_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SWEEP_RUN, "--trials", "3", *_root(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["frontier", "--task", "fever", "--budgets", "300", *_root(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the landscape posterior on 3 trials" in out and "expected regret" in out
    # A store whose only trial learned nothing has no answer: one line, exit 1.
    other = tmp_path / "other"
    assert main([*SWEEP_RUN, "--trials", "1", "--sampler", "tpe", *_root(other)]) == 0
    from sweep.tracking.mlflow_store import Tracker

    tracker = Tracker(f"sqlite:///{other / 'mlflow.db'}")
    (run,) = tracker.trial_runs(task="fever")
    tracker.client.set_tag(run.info.run_id, "degenerate", "student")
    capsys.readouterr()
    assert main(["frontier", "--task", "fever", "--budgets", "300", *_root(other)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "learned anything" in err[-1]


def test_budget_aware_search_returns_a_pareto_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*SYNTHETIC, "--budget-range", "20,200", "--seed-labels", "100", "--trials", "8"]
    assert main(["run", *args, "--name", "mo", *_root(tmp_path)]) == 0
    assert "--pareto" in capsys.readouterr().out
    study = _study(tmp_path, "mo")
    assert len(study.directions) == 2
    # The posterior's first share at the first budget searched, annotate only second.
    assert study.trials[1].params["compute_fraction"] == 0.0
    assert all(20.0 <= t.params["budget_usd"] <= 200.0 for t in study.trials)
    assert main(["best", "--task", "fever", "--pareto", "--json", *_root(tmp_path)]) == 0
    front = json.loads(capsys.readouterr().out)
    assert 1 <= len(front) <= 8
    for a in front:
        assert a["practitioner_usd"] <= a["budget_usd"] + 1e-9
        assert not any(
            b["practitioner_usd"] <= a["practitioner_usd"] and b["score"] > a["score"]
            for b in front
        )
    # Optuna's own Pareto set holds the same score/dollar trade-offs.
    optuna_front = {round(t.values[0], 9) for t in study.best_trials}
    assert {round(r["score"], 9) for r in front} <= optuna_front


def test_warm_start_tries_the_shares_found_on_another_task_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SWEEP_RUN, "--trials", "4", *_root(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["best", "--json", *_root(tmp_path)]) == 0
    fever_best = json.loads(capsys.readouterr().out)[0]["compute_fraction"]
    wlp = [
        "run",
        "--task",
        "wlp",
        "--objective",
        "synthetic",
        "--budget",
        "300",
        "--seed-labels",
        "1000",
        "--trials",
        "3",
    ]
    assert main([*wlp, "--warm-start", "fever", *_root(tmp_path)]) == 0
    first = [t.params["compute_fraction"] for t in _study(tmp_path, "wlp-B300-N1000").trials[:2]]
    assert first == [fever_best, 0.0]  # the warm start's share, then annotate only
    capsys.readouterr()
    assert main([*wlp, "--name", "cold", "--warm-start", "nq", *_root(tmp_path)]) == 2
    assert "--warm-start 'nq': no finished trials" in capsys.readouterr().err
    assert "cold" not in optuna.get_all_study_names(f"sqlite:///{tmp_path / 'optuna.db'}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frontier", "--task", "fever", "--budgets", "10,-5"], "budget_usd > 0"),
        (["frontier", "--task", "fever", "--budgets", "10,x"], "comma-separated floats"),
        (["grid", *SYNTHETIC, "--labels", "1,x", "--unlabelled", "0"], "comma-separated ints"),
        (
            ["grid", *SYNTHETIC, "--labels", "100", "--unlabelled", "0", "--budget", "5"],
            "takes no --budget",
        ),
        (["grid", *SYNTHETIC, "--labels", "0", "--unlabelled", "0"], "labels must be >= 1"),
        (["grid", *SYNTHETIC, "--unlabelled", "0"], "missing --labels"),
        ([*SWEEP_RUN, "--trials", "2", "--budget-range", "50,10"], "0 < low < high"),
        (
            [*SWEEP_RUN, "--trials", "2", "--budget-range", "5,10", "--sampler", "grid"],
            "searching sampler",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, *_root(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
