"""The sweep's answer kept current while it runs: a daemon thread per sweep refreshes the
MLflow descriptions and artifacts (`sweep.decide.summary.refresh`) off the Tune driver's loop."""

from __future__ import annotations

import logging
import threading
import time

from sweep.decide.summary import refresh
from sweep.tracking.mlflow_store import Tracker

logger = logging.getLogger(__name__)

REFRESH_EVERY_S = 2.0  # descriptions: a search of the store, not after every fast trial


class Refresher:
    """Refreshes one sweep's answer in a daemon thread, off the Tune driver's loop: requests
    made meanwhile are merged, descriptions at most every REFRESH_EVERY_S; `finish` asks for
    a last refresh with artifacts (run beside Ray's shutdown) and `join` waits for it."""

    def __init__(self, tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> None:
        self.args = (task, sweep, parent_run_id)
        self.tracking_uri = tracking_uri
        self.cond = threading.Condition()
        self.wanted: bool | None = None  # a refresh is pending; with artifacts if True
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="doa-summary", daemon=True)
        self.thread.start()

    def request(self, artifacts: bool) -> None:
        with self.cond:
            self.wanted = bool(self.wanted) or artifacts
            self.cond.notify()

    def finish(self, artifacts: bool = True) -> None:
        """A last refresh (with artifacts unless told otherwise), then the thread ends."""
        with self.cond:
            if artifacts:
                self.wanted = True
            self.closing = True
            self.cond.notify()

    def join(self) -> None:
        self.finish(artifacts=False)  # a no-op after `finish`: its refresh still runs
        self.thread.join()

    def _next(self, last_s: float) -> tuple[bool | None, bool]:
        """Wait for a request (and until REFRESH_EVERY_S since the last refresh, unless
        closing); returns (what is wanted, whether the thread ends after it)."""
        with self.cond:
            while not self.closing and (
                self.wanted is None or time.monotonic() < last_s + REFRESH_EVERY_S
            ):
                wait = None if self.wanted is None else last_s + REFRESH_EVERY_S - time.monotonic()
                self.cond.wait(wait)
            wanted, self.wanted = self.wanted, None
            return wanted, self.closing

    def _loop(self) -> None:
        last_s = -REFRESH_EVERY_S
        closing = False
        while not closing:
            wanted, closing = self._next(last_s)
            if wanted is None:
                continue
            try:
                refresh(Tracker(self.tracking_uri), *self.args, artifacts=wanted)
            except Exception as exc:  # one line; the traceback with -v
                lines = [line for line in str(exc).splitlines() if line.strip()]
                logger.warning(
                    "could not update the sweep's description in MLflow: %s: %s",
                    type(exc).__name__,
                    lines[0] if lines else "",
                )
                logger.info("the description's error", exc_info=True)
            last_s = time.monotonic()


_REFRESHERS: dict[str, Refresher] = {}  # parent run id -> its sweep's refresher


def refresher(tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> Refresher:
    """The sweep's running refresher, or a new one after the last round's has finished
    (module level: Tune pickles its callbacks, which must not carry the threads)."""
    found = _REFRESHERS.get(parent_run_id)
    if found is None or found.closing:
        settle(parent_run_id)  # a previous round's last refresh comes first
        found = _REFRESHERS[parent_run_id] = Refresher(tracking_uri, task, sweep, parent_run_id)
    return found


def settle(parent_run_id: str) -> None:
    """Wait for the sweep's pending summary refresh (the round's last, with artifacts)."""
    pending = _REFRESHERS.pop(parent_run_id, None)
    if pending is not None:
        pending.join()
