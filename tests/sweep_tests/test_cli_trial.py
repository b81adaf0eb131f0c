import json
from pathlib import Path

import pytest

from sweep.cli.main import main

TINY_ARGS = [
    "--teacher",
    "bert-offline-student",
    "--student",
    "bert-offline-student",
    "--teacher-epochs",
    "2",
    "--student-epochs",
    "2",
    "--distill-epochs",
    "1",
    "--hardware",
    "cpu",
    "--usd-per-device-hour",
    "20000",
]


def test_trial_prints_both_ledgers(tiny_task: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "trial",
        "--task-file",
        str(tiny_task),
        "--task",
        "tiny",
        "--budget",
        "12",
        "--seed-labels",
        "20",
        "--compute-fraction",
        "0.4",
        *TINY_ARGS,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "allocation ledger" in out and "sweep ledger" in out and "72 bought" in out
    # The trial against its trivial baseline, student and teacher each with their margin.
    assert "trivial baseline (majority class" in out and out.count("margin over the") == 2
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_new_labels"] == 72 and result["compute_usd"] == pytest.approx(4.8)
    assert result["practitioner_usd"] <= 12
    assert result["trivial_score"] is not None and result["margin_low"] is not None


def test_trial_reads_a_config_file(
    tiny_task: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "trial.toml"
    cfg.write_text(
        f'task = "tiny"\ntask_file = "{tiny_task}"\nbudget = 5\nseed_labels = 10\n'
        'compute_fraction = 0.0\nstudent = "bert-offline-student"\nteacher = '
        '"bert-offline-student"\nstudent_epochs = 1\n[prices.usd_per_label]\ntiny = 0.5\n'
    )
    assert main(["trial", "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_new_labels"] == 10  # $5 at $0.50


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--compute-fraction", "1.5"], "compute_fraction=1.5"),
        (["--compute-fraction", "0.5", "--budget", "-3"], "budget_usd=-3"),
        (["--compute-fraction", "0.5", "--task", "fevr"], "Unknown task='fevr'; valid tasks"),
        (["--compute-fraction", "0.5", "--seed-labels", "99999"], "n_seed_labels=99999"),
        (["--compute-fraction", "0.5", "--preset", "fast"], "invalid choice: 'fast'"),
        ([], "missing --compute-fraction"),
    ],
)
def test_trial_user_errors(
    tiny_task: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "trial",
        "--task-file",
        str(tiny_task),
        "--task",
        "tiny",
        "--budget",
        "12",
        "--seed-labels",
        "20",
        *TINY_ARGS,
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
