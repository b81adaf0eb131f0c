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


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_ui_opens_on_the_sweeps_trials_and_its_answer(tmp_path: Path) -> None:
    run_sweep(synthetic_config(tmp_path, n_trials=3))
    port = _free_port()
    command = ["sweep", "ui", "--root", str(tmp_path), "--port", str(port), "--no-browser"]
    server = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=restore_sigint,
    )
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
