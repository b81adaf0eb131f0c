"""The sweep commands as users type them: run, resume, best, report; bad input writes nothing."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from PIL import Image

from sweep.cli.main import main
from sweep.tracking.mlflow_store import Tracker
from tests.conftest import SWEEP_RUN

pytestmark = pytest.mark.usefixtures("ray_session")

RUN = SWEEP_RUN


def test_run_best_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = ["--root", str(tmp_path)]
    assert main([*RUN, "--trials", "4", *root]) == 0
    out = capsys.readouterr().out
    # Each trial's allocation against its own budget; the sweep's spend under one name.
    assert "allocation $" in out and "of B=$300;" in out and "sweep spent $" in out
    assert "practitioner $" not in out
    # The printed next command works as printed, from another folder (`sweep` is `main`).
    monkeypatch.chdir(tmp_path.parent)
    printed = out.split("next: ", 1)[1].splitlines()[0]
    assert main(shlex.split(printed)[1:]) == 0
    assert "best f" in capsys.readouterr().out
    assert main([*RUN, "--trials", "3", "--budget", "100", *root]) == 0
    assert "3 trials finished" in capsys.readouterr().out
    assert main(["best", "--json", *root]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["budget_usd"], r["n_trials"]) for r in rows] == [(100.0, 3), (300.0, 4)]
    for r in rows:
        assert 0 <= r["compute_fraction"] <= 1 and r["run_id"]
    assert main(["best", "--budget", "100", *root]) == 0
    table = capsys.readouterr().out
    assert "$100" in table and "$300" not in table and "best f" in table
    out = tmp_path / "report"
    assert main(["report", "--task", "fever", "--out", str(out), *root]) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [
        "fever_history.png",
        "fever_pareto.png",
        "fever_score_vs_fraction.png",
    ]
    for png in pngs:
        with Image.open(png) as image:
            assert image.size[0] > 500
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = tracker.find_sweep_run("fever", "fever-B300-N1000")
    assert parent is not None
    logged = {a.path for a in tracker.client.list_artifacts(parent)}
    assert "fever_pareto.png" in logged


def test_resume_from_the_cli_uses_the_stored_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ["--root", str(tmp_path)]
    assert main([*RUN, "--trials", "2", "--name", "s1", *root]) == 0
    assert main(["run", "--name", "s1", "--resume", "--trials", "3", *root]) == 0
    out = capsys.readouterr().out
    assert "resuming s1: 2 finished trials kept" in out and "3 trials finished" in out
    assert main(["run", "--name", "s1", "--resume", "--trials", "3", "--budget", "50", *root]) == 2
    assert "budget_usd=50.0 but the sweep 's1' was started with budget_usd=300.0" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--trials", "3", "--sampler", "cmaes"], "invalid choice: 'cmaes'"),
        (["--trials", "0"], "n_trials >= 1` must hold, but got n_trials=0"),
        (["--trials", "3", "--budget", "0.1"], "buys no label at $0.129"),
        (["--trials", "3", "--budget", "-5"], "budget_usd=-5"),
        (["--trials", "3", "--task", "nope"], "Unknown task='nope'"),
        (["--trials", "3", "--address", "127.0.0.1:9"], "--address '127.0.0.1:9' is unreachable"),
        (["--trials", "3", "--name", "x", "--resume"], "no sweep named 'x'"),
        (["--trials", "3", "--objective", "replay"], "needs --replay-table"),
        (["--trials", "3", "--tracking-uri", "sqlite:///FILE/m.db"], "is not writable"),
        ([], "missing --trials"),
    ],
)
def test_bad_sweep_input_exits_2_and_writes_nothing(
    tmp_path: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "runs"
    (tmp_path / "FILE").write_text("a file where a folder should be")
    extra = [e.replace("FILE", str(tmp_path / "FILE")) for e in extra]
    assert main([*RUN, *extra, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not root.exists()


def test_queries_on_a_missing_store_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["best", "--root", str(tmp_path / "none")]) == 2
    assert "No MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_doctor_reports_and_fails_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--root", str(tmp_path), "--task", "bbc_news"]) == 0
    out = capsys.readouterr().out
    assert "ok   data bbc_news" in out and "will be created by the first sweep" in out
    assert "hub mode" in out and "devices" in out
    assert not (tmp_path / "mlflow.db").exists()  # the doctor writes nothing
    assert (
        main(
            [
                "doctor",
                "--root",
                str(tmp_path),
                "--task",
                "fever",
                "--data-dir",
                str(tmp_path),
                "--address",
                "127.0.0.1:9",
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "FAIL ray" in captured.out and "unreachable" in captured.out
    assert "FAIL data fever" in captured.out
    assert "2 check(s) failed" in captured.err
