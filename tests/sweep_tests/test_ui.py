"""`sweep ui` serves the store and prints the link to the sweep's runs: a real browser opens
it on the trials, the score columns and the sweep's answer (slow), and a screenshot of that
page is kept in runs/test-artifacts/ui.png (or $DOA_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sweep.engine.tuner import run_sweep
from tests.conftest import restore_sigint
from tests.sweep_tests.conftest import synthetic_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Kept after the test (git-ignored under runs/): the screenshot of what a user sees first.
ARTIFACTS = Path(
    os.environ.get("DOA_TEST_ARTIFACTS", Path(__file__).parents[2] / "runs" / "test-artifacts")
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")


def _chromium(tmp_path: Path, *action: str) -> str:
    """Headless Chromium on a page; what it prints (the DOM for --dump-dom)."""
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
            *action,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout


def _printed_url(server: subprocess.Popen[str], task: str) -> str:
    """The runs link `sweep ui` prints before it starts the server."""
    assert server.stdout is not None
    lines = [server.stdout.readline() for _ in range(2)]
    found = [line.split(": ", 1)[1].strip() for line in lines if f"{task} runs: " in line]
    assert found, lines
    return found[0]


def _start_ui(root: Path, port: int) -> subprocess.Popen[str]:
    """`sweep ui` on `root`'s store, as a user starts it (Ctrl-C reaching it as in a shell)."""
    command = ["sweep", "ui", "--root", str(root), "--port", str(port), "--no-browser"]
    return subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=restore_sigint,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_ui_opens_on_the_sweeps_trials_and_its_answer(tmp_path: Path) -> None:
    run_sweep(synthetic_config(tmp_path, n_trials=3))
    port = _free_port()
    server = _start_ui(tmp_path, port)
    try:
        url = _printed_url(server, "fever")
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/1/runs?")
        _wait_for(f"http://127.0.0.1:{port}/health")
        page = _chromium(tmp_path, "--dump-dom", url)
        text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
        # The runs, not MLflow 3's GenAI overview ("Traces 0", "No data available ...").
        assert "No data available" not in text and "Trials by score" in text
        assert "4 matching runs" in text  # the parent and its three trials
        assert len(re.findall(r"fever/B=300/f=[01]\.\d\d/seed=0", text)) == 3
        assert "Group: syn" in text  # the trials grouped under their sweep
        for column in ("score", "score_low", "score_high", "practitioner_usd"):
            assert column in text.split(), column
        # The answer, first in the experiment's description.
        assert re.search(r"B = \$300: spend \d+ % on compute", text), text[:2000]
        assert "annotating only" in text
        screenshot = ARTIFACTS / "ui.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        _chromium(tmp_path, f"--screenshot={screenshot}", url)
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "MLflow UI stopped" in output


def _store(root: Path) -> None:
    """A store with a task's experiment: what `sweep ui` needs, without a sweep."""
    from sweep.tracking.mlflow_store import Tracker

    Tracker(f"sqlite:///{root / 'mlflow.db'}").experiment_id("fever")


def _taken_port() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def test_a_taken_port_is_one_line_before_anything_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    _store(tmp_path)
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        assert main(["ui", "--root", str(tmp_path), "--port", str(port), "--no-browser"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and f"--port {port} is taken" in err, err


def test_without_port_a_free_one_replaces_a_taken_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from sweep.cli import ui

    with _taken_port() as taken:
        monkeypatch.setattr(ui, "DEFAULT_PORT", taken.getsockname()[1])
        chosen = ui.choose_port("127.0.0.1", None)
        assert chosen != ui.DEFAULT_PORT and ui.port_free("127.0.0.1", chosen)
    assert ui.choose_port("127.0.0.1", None) == ui.DEFAULT_PORT  # free again


def _processes_on(port: int) -> list[int]:
    """Processes whose command line names `port` (the MLflow server and its uvicorn)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and str(port).encode() in words:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status  # a zombie has stopped


def test_sigterm_stops_the_ui_and_every_process_it_started(tmp_path: Path) -> None:
    """SIGTERM takes the path Ctrl-C takes (a KeyboardInterrupt that stops the server's
    process group), so one signal stands for both."""
    _store(tmp_path)
    port = _free_port()
    ui_process = _start_ui(tmp_path, port)
    try:
        _wait_for(f"http://127.0.0.1:{port}/health")
        started = [pid for pid in _processes_on(port) if pid != ui_process.pid]
        assert started, "no server process found"
        ui_process.send_signal(signal.SIGTERM)
        output, _ = ui_process.communicate(timeout=60)
    finally:
        if ui_process.poll() is None:
            ui_process.kill()
    assert ui_process.returncode == 0 and "MLflow UI stopped" in output, output
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if _alive(pid)]
    assert not _processes_on(port) or not any(_alive(p) for p in _processes_on(port))
    from sweep.cli import ui

    assert ui.port_free("127.0.0.1", port)
