"""Where a running trial is, for a person at the console: a bar on a terminal, else a line
at least every 10 s (a paper-recipe trial on a CPU can run for an hour)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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
