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


class RayStart:
    """`_init_ray` in a thread: Ray's start-up (seconds) overlaps opening the stores. The
    thread lives until `end`: Ray's processes die with the thread that started them."""

    def __init__(self, address: str | None) -> None:
        import threading

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
        """True when this driver started Ray (and so shuts it down)."""
        self.ready.wait()
        if self.error is not None:
            raise self.error
        return bool(self.started)

    def end(self) -> None:
        """Shut down a Ray this driver started; the thread ends."""
        self.ready.wait()
        if self.started:
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
