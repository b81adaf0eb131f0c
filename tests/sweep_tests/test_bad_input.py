"""Bad input through the CLI, a config file, task files and data files: one line on stderr
naming the value and what is valid, exit code 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep.cli.main import main


def _task(tmp_path: Path, train_lines: list[str], header: str = "") -> Path:
    (tmp_path / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    (tmp_path / "dev.jsonl").write_text(json.dumps({"text": "ok", "y": "pos"}) + "\n")
    task = tmp_path / "task.toml"
    task.write_text(
        header
        + 'name = "mine"\nmetric = "accuracy"\nusd_per_label = 0.1\ninput_columns = ["text"]\n'
        'target_column = "y"\nlabels = ["neg", "pos"]\n[files]\ntrain = "train.jsonl"\n'
        'dev = "dev.jsonl"\n'
    )
    return task


GOOD_ROW = json.dumps({"text": "fine", "y": "pos"})

CASES: dict[str, tuple[list[str], str, str]] = {
    # data files
    "malformed json line": ([GOOD_ROW, "{oops"], "", "train.jsonl:2: malformed JSON"),
    "wrong column": ([json.dumps({"txt": "a", "y": "pos"})], "", "missing field 'text'"),
    "label outside the set": (
        [json.dumps({"text": "a", "y": "meh"})],
        "",
        "label 'meh', which is not one of",
    ),
    "empty data file": ([""], "", "the file holds no rows"),
    "not an object": ([GOOD_ROW, "[1, 2]"], "", "train.jsonl:2: expected a JSON object"),
    # task files
    "unknown task-file field": ([GOOD_ROW], "price = 3\n", "unknown field 'price'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_and_task_files(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows, header, fragment = CASES[case]
    task = _task(tmp_path, rows, header)
    root = tmp_path / "runs"
    argv = [
        "run",
        "--task-file",
        str(task),
        "--task",
        "mine",
        "--budget",
        "5",
        "--seed-labels",
        "1",
        "--trials",
        "2",
        "--root",
        str(root),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert len(err.strip().splitlines()) == 1 and not root.exists()


def test_a_data_file_that_is_not_utf8_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = _task(tmp_path, [GOOD_ROW])
    (tmp_path / "train.jsonl").write_bytes(
        GOOD_ROW.encode() + b"\n" + "caf\u00e9".encode("latin-1")
    )
    argv = ["trial", "--task-file", str(task), "--task", "mine", "--budget", "5"]
    argv += ["--seed-labels", "1", "--compute-fraction", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.jsonl: not UTF-8 text" in err, err


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("task = [", "is not valid TOML"),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\nsampler = "anneal"\n',
            "Unknown sampler='anneal'; valid: tpe, gp, random, grid",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\n[prices]\nfoo = 1\n',
            "Unknown key 'foo' in [prices]; valid keys",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\nconcurrency = 0\n',
            "concurrency >= 1` must hold, but got concurrency=0",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\nseeds = 0\n',
            "seeds >= 1` must hold, but got seeds=0",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\nteacher_epochs = 0\n',
            "teacher_epochs >= 1` must hold, but got teacher_epochs=0",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\ntemperature = -1\n',
            "temperature > 0` must hold",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\n[prices]\n'
            'usd_per_device_hour = "2"\n',
            "[prices].usd_per_device_hour must be a number of dollars, got '2'",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\n'
            'charge_student_training = "no"\n',
            "[prices].charge_student_training must be true or false, got 'no'",
        ),
        (
            'task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\n[prices]\n'
            'usd_per_label = { fever = "abc" }\n',
            "[prices].usd_per_label.fever must be a number of dollars",
        ),
    ],
)
def test_bad_config_files(
    tmp_path: Path, body: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(body)
    root = tmp_path / "runs"
    assert main(["run", "--config", str(cfg), "--objective", "synthetic", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert len(err.strip().splitlines()) == 1 and not root.exists()


RUN = [
    "run",
    "--task",
    "fever",
    "--budget",
    "30",
    "--seed-labels",
    "10",
    "--trials",
    "2",
    "--objective",
    "synthetic",
]
TRIAL = ["trial", "--task", "fever", "--budget", "10", "--seed-labels", "5"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([*TRIAL, "--compute-fraction", "-0.1"], "compute_fraction=-0.1"),
        (["trial", "--task", "fever", "--budget", "abc"], "invalid float value: 'abc'"),
        (
            [
                "run",
                "--task",
                "fever",
                "--budget",
                "300",
                "--seed-labels",
                "10",
                "--trials",
                "2",
                "--objective",
                "replay",
                "--replay-table",
                "/no/table.csv",
            ],
            "Replay table '/no/table.csv' does not exist",
        ),
        (["best", "--budget", "-3"], "budget_usd=-3"),
        ([*RUN, "--cpus-per-trial", "0"], "cpus_per_trial > 0"),
        ([*RUN, "--teacher-gpus", "-1"], "teacher_gpus >= 0"),
        ([*RUN, "--address", "localhost:abc"], "--address 'localhost:abc' is not HOST:PORT"),
        (
            ["frontier", "--task", "fever", "--budgets", "9", "--seed-labels", "-10"],
            "seed_labels=-10",
        ),
        (
            ["frontier", "--task", "fever", "--budgets", "9", "--holdout-budget", "0"],
            "holdout_budget=0",
        ),
        (
            ["frontier", "--task", "fever", "--budgets", "9", "--max-unlabelled", "-1"],
            "max_unlabelled=-1",
        ),
        (
            [*TRIAL, "--compute-fraction", "0.5", "--max-unlabelled", "-5"],
            "max_unlabelled=-5",
        ),
        (
            [*TRIAL, "--compute-fraction", "0.5", "--max-eval-examples", "0"],
            "max_eval_examples=0",
        ),
        (
            [
                "plan",
                "--task",
                "fever",
                "--budget",
                "10",
                "--max-unlabelled",
                "0",
                "--objective",
                "synthetic",
            ],
            "max_unlabelled=0",
        ),
        (["report"], "the following arguments are required: --task"),
    ],
)
def test_bad_command_lines(
    tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--root", str(tmp_path / "runs")] if argv[0] in ("run",) else argv) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_an_unknown_task_in_a_query_names_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.tracking.mlflow_store import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Tracker(uri).experiment_id("mine")  # a task only the store knows stays valid
    for argv in (
        ["best", "--task", "fevr"],
        ["frontier", "--task", "fevr", "--budgets", "9"],
        [
            "plan",
            "--task",
            "fever",
            "--budget",
            "9",
            "--warm-start",
            "fevr",
            "--objective",
            "synthetic",
        ],
    ):
        assert main([*argv, "--tracking-uri", uri]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Unknown task='fevr'" in err, err
        assert "fever" in err and "mine" in err
    assert main(["best", "--task", "mine", "--tracking-uri", uri]) == 1  # known, no trials


def test_prices_at_a_config_files_top_level_count(tmp_path: Path) -> None:
    import argparse

    from sweep import config

    file = {"usd_per_device_hour": 75, "charge_student_training": True, "price": ["fever=0.5"]}
    args = argparse.Namespace(price=["nq=2"], usd_per_device_hour=None)
    book = config.book_from(args, file)
    assert (book.usd_per_device_hour, book.charge_student_training) == (75, True)
    assert (book.label_price("fever"), book.label_price("nq")) == (0.5, 2.0)
    args.usd_per_device_hour = 3.0  # the command line wins
    assert config.book_from(args, file).usd_per_device_hour == 3.0


def test_address_auto_without_a_cluster_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ray._private import services

    def nothing(addr: str) -> str:
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(services, "canonicalize_bootstrap_address_or_die", nothing)
    root = tmp_path / "runs"
    assert main([*RUN, "--address", "auto", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--address 'auto' found no single Ray cluster" in err
    assert not root.exists()
