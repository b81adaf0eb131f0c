"""One driver per sweep at a time: an advisory lock a driver holds while it runs a sweep.

Two `sweep run --resume` of one sweep at once would each run the missing trials (the study
ends with too many, a share measured twice), each take the other's running trials for
stale ones, and each write its own spend over the other's. The lock is a `flock` on
`drivers/<sweep>.lock` beside the Optuna store (under `--root` when the store is a server):
the kernel releases it when the driver ends, SIGKILL included, so a dead driver never
blocks a resume. Like the SQLite stores, it holds on one machine (docs/failures.md).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sweep.config import SweepConfig, store_path


def lock_path(cfg: SweepConfig) -> Path:
    store = store_path(cfg.optuna_storage)
    folder = store.parent if store is not None else Path(cfg.root)
    return folder / "drivers" / f"{cfg.name}.lock"


@contextmanager
def driver_lock(cfg: SweepConfig) -> Iterator[None]:
    """Held while this process drives `cfg`'s sweep; a second driver of the same sweep is a
    user error naming the first. Where the lock file cannot be made (a read-only folder, no
    `fcntl`), the sweep runs without it: its store's own checks refuse what they must."""
    try:
        import fcntl

        path = lock_path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (closed below)
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(
                f"sweep {cfg.name!r} is being run by another driver ({holder}); one driver "
                "runs a sweep at a time: wait for it to end, or stop it (Ctrl-C) and then "
                "--resume."
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
