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
    practitioner_usd: float = 0.0
    spent_usd: float = 0.0

    @classmethod
    def of(cls, finished: list[Any]) -> Tally:
        """The totals a resumed sweep starts from: its finished Optuna trials."""
        if not finished:
            return cls()
        best = max(finished, key=lambda t: t.values[0])
        return cls(len(finished), 0, best.values[0], best.params.get("compute_fraction", 0.0))


HEARTBEAT_S = 10.0


def _point(config: Mapping[str, Any]) -> str:
    """A trial's point as people read it: its compute share, or its grid cell."""
    if "n_labels" in config:
        return f"L={config['n_labels']} U={config['n_unlabelled']}"
    return f"f={float(config.get('compute_fraction', 0.0)):.2f}"


def _failure_reason(trial: Any) -> str:
    """The last line of the error Ray recorded for a trial (exception type and message),
    read from its error file: the worker may have died before MLflow heard of it."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
    except (OSError, TypeError):
        return "its worker ended without saying why (see the Ray logs)"
    return last_line(text)


def last_line(text: str) -> str:
    """A traceback's last line: the exception's type and message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no error text"


FAIL_FAST_AFTER = 3  # failures of one exception type with no trial finished: systematic


def systematic(failures: Sequence[str]) -> str | None:
    """The exception type, when the failures so far are one error repeating (a missing
    model, a bug in the objective), as Ray Tune's `fail_fast` would conclude from the first."""
    kinds = {reason.split(":")[0] for reason in failures}
    return kinds.pop() if len(failures) >= FAIL_FAST_AFTER and len(kinds) == 1 else None


def fail_fast(finished: int) -> Any:
    """A Tune callback that reads each failure as it happens; `halted()` turns true once the
    first FAIL_FAST_AFTER failures are one error and no trial has finished (`finished`: the
    sweep's so far), so the searcher starts no more trials in this round."""
    from ray.tune import Callback

    class FailFast(Callback):
        def __init__(self) -> None:
            self.finished = finished
            self.reasons: list[str] = []

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **_: Any
        ) -> None:
            self.finished += (trial.last_result or {}).get("stage") == "final"

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            self.reasons.append(_failure_reason(trial))

        def halted(self) -> bool:
            return self.finished == 0 and systematic(self.reasons) is not None

    return FailFast()


def sweep_progress(total: int, study: Any, out: TextIO) -> Any:
    """A Tune callback printing a line per finished or failed trial, and a heartbeat at
    least every HEARTBEAT_S while trials run."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self, out: TextIO) -> None:
            import optuna

            self.out = out  # an argument: Tune pickles this class with its closures
            done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            self.tally = Tally.of(done)
            self.running: dict[str, float] = {}  # trial id -> start time
            self.stage: dict[str, str] = {}  # trial id -> last stage it reported
            self.last_line_s = time.monotonic()

        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            self.running[trial.trial_id] = time.monotonic()

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **_: Any
        ) -> None:
            if result.get("stage") not in (None, "final"):
                self.stage[trial.trial_id] = f"{result['stage']} dev {result['score']:.3f}"

        def on_step_begin(self, iteration: int, trials: list[Any], **_: Any) -> None:
            # A heartbeat: a long trial shows it is alive at least every HEARTBEAT_S.
            now = time.monotonic()
            if not self.running or now - self.last_line_s < HEARTBEAT_S:
                return
            alive = [
                f"{_point(t.config)} for {now - self.running[t.trial_id]:.0f} s"
                + (f" ({self.stage[t.trial_id]})" if t.trial_id in self.stage else "")
                for t in trials
                if t.trial_id in self.running
            ]
            self._line("running " + ", ".join(alive))

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **_: Any
        ) -> None:
            self.running.pop(trial.trial_id, None)
            result = trial.last_result or {}
            if result.get("stage") != "final":
                return
            t = self.tally
            t.done += 1
            t.practitioner_usd += float(result.get("practitioner_usd", 0.0))
            t.spent_usd += float(result.get("sweep_spent_usd", 0.0))
            if t.best is None or result["score"] > t.best:
                t.best, t.best_fraction = float(result["score"]), result["compute_fraction"]
            self._line(f"trial {_point(trial.config)} score={result['score']:.4f}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            self.running.pop(trial.trial_id, None)
            self.tally.failed += 1
            self._line(f"trial {trial.trial_id} FAILED: {_failure_reason(trial)}")

        def _line(self, event: str) -> None:
            t = self.tally
            best = "-" if t.best is None else f"{t.best:.4f} at f={t.best_fraction:.2f}"
            print(
                f"[{t.done}/{total} done, {len(self.running)} running, {t.failed} failed] "
                f"{event}; best {best}; practitioner ${t.practitioner_usd:.2f}, "
                f"sweep spent ${t.spent_usd:.4f}",
                file=self.out,
                flush=True,
            )
            self.last_line_s = time.monotonic()

        # Tune pickles its callbacks into the experiment checkpoint; a stream (e.g. pytest's
        # capture) does not pickle, so a restored callback writes to standard output.
        def __getstate__(self) -> dict[str, Any]:
            return {k: v for k, v in self.__dict__.items() if k != "out"}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__dict__.update(state, out=sys.stdout)

    return Progress(out)
