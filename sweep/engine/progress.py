"""Progress for a person at the console: where a running trial is (a bar on a terminal, else
a line at least every 10 s: a paper-recipe trial on a CPU can run for an hour), and a sweep's
line per finished trial with a heartbeat while trials run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

LINE_EVERY_S = 10.0
BAR_EVERY_S = 0.25
BAR_WIDTH = 24


class TrialProgress:
    """A `report` callable for `run_trial`: stage starts, training steps, quick dev scores."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.out = out or sys.stderr
        self.clock = clock
        self.tty = self.out.isatty()
        self.started = clock()
        self.last_s = -1e9
        self.phase = ""
        self.bar_open = False

    def __call__(self, metrics: dict[str, Any]) -> None:
        stage = str(metrics.get("stage"))
        if stage == "final":
            self._close_bar()
            return
        if stage != "progress":  # a quick dev score at an epoch of a student stage
            self._line(f"{stage} epoch {metrics['epoch']}: dev {float(metrics['score']):.4f}")
            return
        phase, step, steps = str(metrics["phase"]), int(metrics["step"]), int(metrics["steps"])
        now = self.clock()
        new_phase = phase != self.phase
        self.phase = phase
        if new_phase and step == 0:
            if phase != "prepare":  # instant, and bad input fails there: one error line only
                self._line(f"{phase} started")
        elif self.tty and (now - self.last_s >= BAR_EVERY_S or step == steps):
            self._bar(phase, step, steps, now)
        elif not self.tty and (now - self.last_s >= LINE_EVERY_S or new_phase):
            self._line(f"{phase}: step {step}/{steps}")

    def _elapsed(self, now: float | None = None) -> str:
        return f"{(now if now is not None else self.clock()) - self.started:6.0f} s"

    def _line(self, text: str) -> None:
        self._close_bar()
        print(f"[{self._elapsed()}] {text}", file=self.out, flush=True)
        self.last_s = self.clock()

    def _bar(self, phase: str, step: int, steps: int, now: float) -> None:
        done = int(BAR_WIDTH * step / max(steps, 1))
        bar = "#" * done + "." * (BAR_WIDTH - done)
        self.out.write(f"\r[{self._elapsed(now)}] {phase:<11} [{bar}] {step}/{steps} steps ")
        self.out.flush()
        self.bar_open, self.last_s = True, now

    def _close_bar(self) -> None:
        if self.bar_open:
            self.out.write("\n")
            self.bar_open = False


@dataclass
class Tally:
    """A sweep's running totals, as its progress lines show them."""

    done: int = 0
    failed: int = 0
    best: float | None = None
    best_fraction: float | None = None
    spent_usd: float = 0.0  # the sweep ledger: what deciding has really spent

    @classmethod
    def of(cls, finished: list[Any]) -> Tally:
        """The totals a resumed sweep starts from: its finished Optuna trials."""
        if not finished:
            return cls()
        best = max(finished, key=lambda t: t.values[0])
        return cls(len(finished), 0, best.values[0], best.params.get("compute_fraction", 0.0))


HEARTBEAT_S = 10.0


def point_label(config: Mapping[str, Any]) -> str:
    """A trial's point as people read it: its compute share, or its grid cell."""
    if "n_labels" in config:
        return f"L={config['n_labels']} U={config['n_unlabelled']}"
    return f"f={float(config.get('compute_fraction', 0.0)):.2f}"


def failure_reason(trial: Any) -> str:
    """The last line of the error Ray recorded for a trial (exception type and message),
    read from its error file: the worker may have died before MLflow heard of it."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    except (OSError, TypeError):
        return "its worker ended without saying why (see the Ray logs)"
    return last_line(text)


# Lines SQLAlchemy adds below an error's own: its statement, parameters and help link.
_TRAILERS = ("(Background on this error at:", "[SQL:", "[parameters:")


def last_line(text: str) -> str:
    """A traceback's last line: the exception's type and message (read from the whole text:
    SQLAlchemy's trailing lines are skipped, and nothing is cut before it is read)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_TRAILERS)] or lines
    return lines[-1][:300] if lines else "no error text"


FAIL_FAST_AFTER = 2  # one exception type twice, no trial finished: systematic at its repeat


def systematic(failures: Sequence[str]) -> str | None:
    """The first failure (exception type and message), when the failures so far are one
    error repeating (a missing model, a bug in the objective): the sweep stops at the first
    repeat, as Ray Tune's `fail_fast` would conclude from the first failure."""
    kinds = {reason.split(":")[0] for reason in failures}
    return failures[0] if len(failures) >= FAIL_FAST_AFTER and len(kinds) == 1 else None
