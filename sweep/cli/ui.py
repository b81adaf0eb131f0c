"""`sweep ui`: the MLflow UI on the store, and the links that open it on the sweeps' runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from typing import Any

from sweep.tracking.mlflow_store import Tracker, runs_url

READY_TIMEOUT_S = 60.0
DEFAULT_PORT = 5000  # MLflow's own; another free one when it is taken and --port was not given


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


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now: bound as uvicorn binds
    (SO_REUSEADDR), so a port only in TIME_WAIT counts as free and one listened on does not."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def choose_port(host: str, port: int | None) -> int:
    """The port to serve on, found before anything is printed: `port` when it is free (a
    taken one is a one-line error), else DEFAULT_PORT, else any free port."""
    try:
        if port is not None:
            if not 0 < port < 65536:
                raise ValueError(f"--port must be within 1..65535, but got --port {port}.")
            if not port_free(host, port):
                raise ValueError(
                    f"--port {port} is taken on {host} (another server listens there); "
                    "choose another --port, or leave it out for a free one."
                )
            return port
        if port_free(host, DEFAULT_PORT):
            return DEFAULT_PORT
        family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except socket.gaierror:
        raise ValueError(
            f"--host {host!r} is not an address of this machine; e.g. 127.0.0.1 (this machine "
            "only) or 0.0.0.0 (every interface)."
        ) from None


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and every process it started (`mlflow server` runs uvicorn as a
    child): they share a process group of their own."""
    for signum, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:  # the group is gone
            return
        try:
            server.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(
    tracker: Tracker, host: str, port: int | None, task: str | None, open_browser: bool
) -> int:
    """Run the MLflow server until it exits, Ctrl-C or SIGTERM (which stop its children
    too); print (and open) the runs' links. A port that is taken is found before anything
    is printed; a server that exits before it answers is an error, not a success."""
    asked, port = port, choose_port(host, port)
    base = server_url(host, port)
    urls = runs_urls(tracker, base, task)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracker.backend_uri),
        *("--host", host, "--port", str(port), "--workers", "1"),
    ]
    moved = f"{DEFAULT_PORT} is taken; " if asked is None and port != DEFAULT_PORT else ""
    print(f"MLflow UI on http://{host}:{port} ({moved}Ctrl-C stops it)", flush=True)
    for name, url in urls.items():
        print(f"  {name} runs: {url}", flush=True)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    # A group of its own: a terminal's Ctrl-C reaches this process alone, which then stops
    # the whole group (`stop`), SIGTERM likewise, so no server child keeps the port.
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        if not wait_until_ready(base, server):
            code = server.poll()
            stop(server)
            why = (
                f"its server exited with code {code}; see its lines above"
                if code is not None
                else f"its server did not answer within {READY_TIMEOUT_S:g} s"
            )
            raise ValueError(f"the MLflow UI did not start on {base} ({why}).")
        if urls and open_browser and display_at_hand():
            webbrowser.open(next(iter(urls.values())))
        return server.wait()
    except KeyboardInterrupt:
        stop(server)
        print("MLflow UI stopped", flush=True)
        return 0
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            stop(server)
