"""Bad input through the CLI, a config file, task files and data files: one line on stderr
naming the value and what is valid, exit code 2, and nothing written."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sweep.cli.main import main
from tests.conftest import REPO_DATA


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
            "Unknown sampler='anneal'; valid: posterior, tpe, gp, random, grid",
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
        # A value is what its option takes, as on the command line (issue 41, item 2).
        (
            'task = "fever"\nbudget = 30\nseed_labels = 100.7\ntrials = 2\n',
            "seed_labels: invalid int value: 100.7",
        ),
        ('task = "fever"\nbudget = true\nseed_labels = 1\ntrials = 2\n', "budget: invalid float"),
        (
            'task = "fever"\nbudget = "ten"\nseed_labels = 1\ntrials = 2\n',
            "budget: invalid float value: 'ten'",
        ),
        ('task = "fever"\nbudget = 30\nseed_labels = 1\ntrials = 2.7\n', "trials: invalid int"),
        ("task = 3\nbudget = 30\nseed_labels = 1\ntrials = 2\n", "task: invalid string value"),
        (
            'task = "fever"\nbudget = 30\nseed_labels = 1\ntrials = 2\nasha = "yes"\n',
            "asha: invalid value 'yes'; true or false",
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
        ([*TRIAL, "--compute-fraction", "1", "--a-usd", "-1"], "a_usd=-1"),
        (["plan", "--task", "fever", "--budget", "10", "--a-usd", "-2"], "a_usd=-2"),
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
        # Issue 41: the largest budget (items 5), stand-in seconds (11), a stand-in's data
        # sizes (12), a teacher path that does not exist (9), the pending timeout.
        ([*RUN, "--budget", "1e23"], "`budget_usd <= 1e+09` must hold"),
        ([*RUN, "--budget", "1e21"], "but got budget_usd=1e+21"),
        ([*RUN, "--standin-work-seconds", "-1"], "standin_work_seconds=-1.0"),
        ([*RUN, "--pending-timeout", "0"], "pending_timeout_s=0.0"),
        (
            [*RUN, "--seed-labels", "10000000", "--data-dir", str(REPO_DATA)],
            "10000000 labels were asked for 'fever', whose pool has 1000 rows",
        ),
        (
            [
                *RUN[:-2],
                "--seed-labels",
                "100",
                "--teacher",
                "/nonexistent",
                "--data-dir",
                str(REPO_DATA),
            ],
            "--teacher '/nonexistent' is a path that does not exist",
        ),
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


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the test reads stderr
        pass


@pytest.mark.slow
@pytest.mark.parametrize("listener", ["web server", "silent"])
def test_an_address_where_ray_is_not_is_one_line(
    tmp_path: Path, listener: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Something listens at --address, but not Ray: one line within seconds, nothing
    written (Ray's own client would retry for minutes)."""
    if listener == "web server":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port, close = server.server_address[1], server.shutdown
    else:  # accepts connections (the kernel does, from its backlog) and never answers
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port, close = silent.getsockname()[1], silent.close
    root = tmp_path / "runs"
    started = time.monotonic()
    try:
        assert main([*RUN, "--address", f"127.0.0.1:{port}", "--root", str(root)]) == 2
        err = capsys.readouterr().err.strip()
        # `sweep doctor` tells the same, instead of hanging in `ray.init`.
        main(["doctor", "--address", f"127.0.0.1:{port}", "--root", str(tmp_path / "doc")])
        doctor = capsys.readouterr()
    finally:
        close()
    assert time.monotonic() - started < 25
    assert len(err.splitlines()) == 1, err
    assert f"--address '127.0.0.1:{port}' is not a Ray cluster" in err
    assert not root.exists()
    assert "is not a Ray cluster" in doctor.out + doctor.err


def test_a_task_file_whose_columns_are_missing_is_refused_by_the_stand_ins_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = _task(tmp_path, [json.dumps({"txt": "a", "y": "pos"})])
    root = tmp_path / "runs"
    argv = ["run", "--task-file", str(task), "--budget", "5", "--seed-labels", "1"]
    argv += ["--trials", "2", "--objective", "synthetic", "--root", str(root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing field 'text'" in err, err
    assert not root.exists()


def test_a_bad_trial_value_is_the_first_and_only_line() -> None:
    """Refused before the recipe's notice is printed and before torch is imported."""
    check = (
        "import sys; from sweep.cli.main import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)"
    )
    argv = [*TRIAL, "--compute-fraction", "1.5"]
    done = subprocess.run(
        [sys.executable, "-c", check, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "sweep: error: `0 <= compute_fraction <= 1` must hold, but got compute_fraction=1.5."
    )


def test_an_unknown_config_key_suggests_the_close_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('task = "fever"\nbudget = 300\nseed_labels = 10\ntrials = 2\nseed_label = 3\n')
    root = tmp_path / "runs"
    assert main(["run", "--config", str(cfg), "--objective", "synthetic", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown key 'seed_label' in --config; did you mean 'seed_labels'?" in err, err
    listed = err.split("valid keys: ", 1)[1].rstrip(".").split(", ")
    assert "seed_labels" in listed and "command" not in listed and "config" not in listed
    assert len(err.splitlines()) == 1 and not root.exists()


def test_an_unwritable_root_is_named_as_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("a file where a folder should be")
    root = tmp_path / "file" / "runs"  # (a read-only folder would not stop root: tests run as root)
    assert main([*RUN, "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sweep: error: --root '{root}' is not writable"), err
    assert "--tracking-uri" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            [
                "grid",
                "--task",
                "fever",
                "--labels",
                "100000000",
                "--unlabelled",
                "0",
                "--objective",
                "synthetic",
                "--data-dir",
                str(REPO_DATA),
            ],
            "100000000 labels were asked for 'fever', whose pool has 1000 rows",
        ),
        (["plan", "--task", "fever", "--budget", "1e23"], "`budget_usd <= 1e+09` must hold"),
        (
            [
                "grid",
                "--task",
                "fever",
                "--labels",
                "100",
                "--unlabelled",
                "10",
                "--compute-allowance",
                "1e23",
                "--objective",
                "synthetic",
            ],
            "`compute_allowance_usd <= 1e+09` must hold",
        ),
        (["run", "--config", str(REPO_DATA)], "is a folder; pass a TOML file"),
    ],
)
def test_bad_grids_plans_and_config_paths(
    tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "runs"
    assert main([*argv, "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err
    assert not root.exists()


def test_a_config_file_string_is_parsed_as_the_command_line_parses_it() -> None:
    from sweep.cli.parser import file_values

    values = {"budget": "30", "trials": 4, "labels": [100, 500], "task_file": "t.toml"}
    assert file_values("grid", "f.toml", values) == {
        "budget": 30.0,
        "trials": 4,
        "labels": [100, 500],
        "task_file": ["t.toml"],
    }
    assert file_values("grid", "f.toml", {"labels": "100,500"})["labels"] == [100, 500]


def test_a_query_leaves_out_a_sweep_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A sweep stored with a bad value (as `seed_labels = 100.7` once was) is named and left
    out; the good sweeps beside it are still answered."""
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.schema import TAG_BUDGET, TAG_SEED_LABELS, TAG_SWEEP

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    experiment = tracker.experiment_id("fever")
    for sweep, seed_labels in (("good", "100"), ("fever-B30-N100.7", "100.7")):
        parent = tracker.start_sweep_run("fever", sweep, {})
        tags = {TAG_SWEEP: sweep, TAG_BUDGET: "30", TAG_SEED_LABELS: seed_labels}
        run = tracker.start_trial_run("fever", experiment, parent, "t", {}, tags)
        tracker.log(run, metrics={"score": 0.5, "compute_fraction": 0.0})
        tracker.end(run)
    assert main(["best", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "fever" in out and "$30" in out
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned  # one line for the sweep, not one per trial
    assert "left out sweep 'fever-B30-N100.7': its trials cannot be read" in warned[0]
