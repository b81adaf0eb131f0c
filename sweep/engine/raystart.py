"""The driver's Ray: started (or joined) beside the stores' opening, each trial's resources,
and SIGTERM treated as Ctrl-C while the sweep runs."""

from __future__ import annotations

import logging
import os
from typing import Any

from sweep.config import SweepConfig

RAY_TMP = "/tmp/doa-ray"  # short: Ray's unix sockets break on paths over ~107 bytes


def _init_ray(address: str | None) -> bool:
    """Join `address`, or start an embedded Ray; True when this driver started it."""
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, _temp_dir=RAY_TMP, **common)
    return True


# How long a sweep waits for Ray: to join a cluster whose address answered as Ray's
# (`check_ray_cluster`), or to start a local one on a loaded machine. Past it, one line.
JOIN_TIMEOUT_S = 60.0
LOCAL_START_TIMEOUT_S = 180.0


class RayStart:
    """`_init_ray` in a thread: Ray's start-up (seconds) overlaps opening the stores. The
    thread lives until `end`: Ray's processes die with the thread that started them."""

    def __init__(self, address: str | None) -> None:
        import threading

        self.address = address
        self.started: bool | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.ended = threading.Event()
        threading.Thread(target=self._run, args=(address,), daemon=True).start()

    def _run(self, address: str | None) -> None:
        try:
            self.started = _init_ray(address)
        except BaseException as exc:  # raised in the driver's thread by `wait`
            self.error = exc
        self.ready.set()
        self.ended.wait()

    def wait(self) -> bool:
        """True when this driver started Ray (and so shuts it down). Bounded: a cluster that
        does not let the driver join within JOIN_TIMEOUT_S is a one-line error."""
        timeout_s = JOIN_TIMEOUT_S if self.address else LOCAL_START_TIMEOUT_S
        if not self.ready.wait(timeout_s):
            where = f"the Ray cluster at --address {self.address!r}" if self.address else "Ray"
            raise ValueError(
                f"{where} did not let this driver join within {timeout_s:g} s; check it with "
                "`ray status`, or leave --address out for a local Ray."
            )
        if self.error is not None:
            raise self.error
        return bool(self.started)

    def end(self) -> None:
        """Shut down a Ray this driver started; the thread ends. A start still under way (a
        sweep interrupted or timed out while joining) is left to die with the process."""
        if self.ready.wait(1.0 if self.address else LOCAL_START_TIMEOUT_S) and self.started:
            import ray

            ray.shutdown()
        self.ended.set()


def resolve_auto(address: str | None) -> str | None:
    """`auto` as the cluster it means (the one `ray start` left on this machine, found as Ray
    finds it), so that it is checked like any HOST:PORT; other addresses as they are."""
    if address != "auto":
        return address
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        return str(canonicalize_bootstrap_address_or_die("auto"))
    except ConnectionError:
        raise ValueError(
            "--address 'auto' found no single Ray cluster on this machine; start one "
            "(`ray start --head`), name it as HOST:PORT, or leave --address out for a local Ray."
        ) from None


PROBE_TIMEOUT_S = 8.0  # Ray's own client retries for a minute against a port that is not Ray
# Ray's GCS speaks gRPC over HTTP/2: after a client's connection preface and an empty SETTINGS
# frame it answers with a SETTINGS frame (a 9-byte header whose type byte, the 4th, is 4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# A GCS client in a child process: the one in `ray.init` cannot be stopped once it waits.
_GCS_PROBE = "import sys, ray._raylet as r; r.GcsClient(address=sys.argv[1]).cluster_id"


def check_ray_cluster(address: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Refuse, within seconds and before anything is written, an `--address` where something
    listens that is not a Ray cluster (a web server, another service): `ray.init` would
    retry for minutes. HOST:PORT must answer as Ray's GCS does; `ray://` (Ray Client) must
    at least speak gRPC. `check_reachable` has already found the port open."""
    import socket
    import subprocess
    import sys
    from urllib.parse import urlparse

    if address is None:
        return
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    hint = (
        "give the head node's address (`ray start --head` prints it, e.g. 10.0.0.1:6379), "
        "or leave --address out for a local Ray."
    )
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=3.0) as conn:
            conn.sendall(_HTTP2_PREFACE)
            reply = b""
            while len(reply) < 9 and (chunk := conn.recv(64)):
                reply += chunk
    except OSError:  # no answer within the timeout, or the connection reset
        reply = b""
    if len(reply) < 9 or reply[3] != 4:
        first = reply.splitlines()[0][:40] if reply.strip() else b""
        what = repr(first.decode("ascii", "replace")) if first else "nothing"
        raise ValueError(f"--address {address!r} is not a Ray cluster (it answered {what}); {hint}")
    if parsed.scheme == "ray":
        return
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _GCS_PROBE, address],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        why = f"no answer within {timeout_s:g} s"
    else:
        if probe.returncode == 0:
            return
        lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
        why = lines[-1][:200] if lines else f"exit code {probe.returncode}"
    raise ValueError(f"--address {address!r} did not answer as a Ray cluster ({why}); {hint}")


def cluster_profile(cfg: SweepConfig) -> Any:
    """What each trial asks of the cluster (refusing negative or zero resources)."""
    from cluster import ClusterProfile

    return ClusterProfile(
        cfg.cpus_per_trial,
        cfg.teacher_gpus,
        cfg.student_gpus,
        cfg.teacher_node_resource,
        cfg.student_node_resource,
    )


def trial_resources(cfg: SweepConfig) -> Any:
    from ray.tune import PlacementGroupFactory

    from cluster import resources_for

    profile = cluster_profile(cfg)
    return profile, lambda config: PlacementGroupFactory(
        [resources_for(config, profile).as_ray_dict()]
    )


def check_cluster_fits(profile: Any) -> None:
    import ray

    from cluster import check_feasible, resources_for

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    for kind, fraction in (("a distillation trial", 1.0), ("an annotation-only trial", 0.0)):
        check_feasible(resources_for({"compute_fraction": fraction}, profile), nodes, kind)


def sigterm_as_interrupt() -> Any:
    """Treat SIGTERM like Ctrl-C while the sweep runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
