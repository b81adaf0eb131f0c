"""`sweep ui`: the MLflow UI on the store, and the links that open it on the sweeps' runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import webbrowser

from sweep.tracking.mlflow_store import Tracker, runs_url

READY_TIMEOUT_S = 60.0


def server_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a server listening on `host`."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{reachable}:{port}"


def runs_urls(tracker: Tracker, base_url: str, task: str | None = None) -> dict[str, str]:
    """Task -> the link to its runs, most recently used task first. Marks each experiment
    on the way, so that a store written by an older version opens on its runs too."""
    experiments = tracker.experiments()
    if task is not None and task not in experiments:
        known = ", ".join(sorted(experiments)) or "none"
        raise ValueError(f"No sweep of task {task!r} in {tracker.tracking_uri} (tasks: {known}).")
    chosen = [task] if task is not None else list(experiments)
    return {name: runs_url(base_url, tracker.experiment_id(name)) for name in chosen}


def display_at_hand() -> bool:
    """Whether a browser can open a window here. Without a display, `webbrowser` falls back
    to a text browser (lynx, w3m) that would take over the terminal the server logs to."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def wait_until_ready(base_url: str, server: subprocess.Popen[bytes]) -> bool:
    """True once the server answers /health; False if it exited or took too long."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def serve(tracker: Tracker, host: str, port: int, task: str | None, open_browser: bool) -> int:
    """Run the MLflow server until it exits or Ctrl-C; print (and open) the runs' links."""
    base = server_url(host, port)
    urls = runs_urls(tracker, base, task)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracker.tracking_uri),
        *("--host", host, "--port", str(port), "--workers", "1"),
    ]
    print(f"MLflow UI on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    for name, url in urls.items():
        print(f"  {name} runs: {url}", flush=True)
    server = subprocess.Popen(command, env=env)
    try:
        if urls and open_browser and display_at_hand() and wait_until_ready(base, server):
            webbrowser.open(next(iter(urls.values())))
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=20)
        print("MLflow UI stopped")
        return 0
