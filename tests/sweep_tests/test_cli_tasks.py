import json
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.cli.main import main


def test_tasks_table_shows_all_eight_with_paper_prices(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tasks", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    for name, price in [
        ("wlp", "0.260"),
        ("stanceosaurus", "0.364"),
        ("fever", "0.129"),
        ("multipit_id", "0.200"),
        ("multipit_gen", "0.371"),
        ("nq", "0.129"),
    ]:
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert price in line
        assert "5000/1000/1000" in line or name == "stanceosaurus"
    assert "bbc_news" in out and "sst2" in out and "$1.875 per device-hour" in out


def test_tasks_json_applies_price_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[prices]\nusd_per_device_hour = 2.5\n[prices.usd_per_label]\nnq = 0.3\n")
    assert main(["tasks", "--json", "--config", str(cfg), "--price", "fever=0.2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    prices = {t["name"]: t["usd_per_label"] for t in payload["tasks"]}
    assert prices["fever"] == 0.2 and prices["nq"] == 0.3 and prices["wlp"] == 0.26
    assert payload["usd_per_device_hour"] == 2.5


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tasks", "--data-dir", "/no/such/dir"], "--data-dir '/no/such/dir' is not a directory"),
        (["tasks", "--price", "fever=-1"], "got 'fever=-1'"),
        (["tasks", "--config", "/no/such.toml"], "does not exist"),
        (["tasks", "--task-file", "/no/such.toml"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_python_dash_m_runs_the_same_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sweep", "tasks", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["tasks"]) == 8
