"""`sweep ui` serves the store: a real browser finds the sweep's runs on the page (slow)."""

from __future__ import annotations

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

from sweep.tuner import run_sweep
from tests.conftest import restore_sigint
from tests.sweep_tests.conftest import synthetic_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_ui_shows_the_sweep_in_a_browser(tmp_path: Path) -> None:
    run_sweep(synthetic_config(tmp_path, n_trials=3))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sweep", "ui", "--root", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=restore_sigint,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/health")
        page = subprocess.run(
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
                "--dump-dom",
                f"http://127.0.0.1:{port}/#/experiments/1/runs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
        text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
        assert "distill-or-annotate/fever" in text
        assert "syn" in text.split()  # the sweep's parent run by name
        assert "4 matching runs" in text  # the parent and its three trials
    finally:
        server.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert f"MLflow UI on http://127.0.0.1:{port}" in output and "MLflow UI stopped" in output
