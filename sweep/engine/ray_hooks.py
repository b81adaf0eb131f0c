"""Every hook this project plugs into Ray Tune, in one module that imports Ray at the top:
the spending cap around the searcher, the fail-fast and console callbacks, the callback that
keeps the sweep's answer current in MLflow, and the trial's intermediate report. Only the
commands that run sweeps load it (`sweep best` and the other queries stay light).

Tune pickles its callbacks into the experiment checkpoint and its searcher into the
searcher checkpoint: each hook keeps plain values, never a thread or a stream."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import optuna
from ray import tune
from ray.tune import Callback, Stopper
from ray.tune.search import Searcher

from objectives.baselines import degenerate_lines, learned_nothing
from sweep.engine.progress import HEARTBEAT_S, Tally, failure_reason, point_label, systematic
from sweep.engine.refresher import refresher
from sweep.engine.spend import SpendLedger
from sweep.engine.stopping import no_space
from sweep.tracking.schema import trial_spent_usd

ARTIFACTS_EVERY_S = 60.0  # plots take seconds: not after every trial of a fast sweep


class SpendCap(Searcher):
    """`searcher` that starts no trial once `ledger` refuses one (`--max-spend`: the trial,
    priced at its worst by `worst_usd`, could take the sweep over the cap), or once
    `halted()` (the sweep's failures are systematic). A refused trial never runs: its Optuna
    trial is marked by `refused` (its number) and failed, and a planned point is queued
    again for a resume with a larger cap."""

    def __init__(
        self,
        searcher: Any,
        ledger: SpendLedger,
        halted: Callable[[], bool] = lambda: False,
        worst_usd: Callable[[dict[str, Any]], float] = lambda config: 0.0,
        refused: Callable[[int], None] = lambda number: None,
    ) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        # Not `self.searcher`: Tune would take this for a wrapper (as ConcurrencyLimiter is)
        # and save its state apart, which a Searcher without get_state cannot give.
        self.inner, self.ledger, self.halted = searcher, ledger, halted
        self.worst_usd, self.refused = worst_usd, refused
        self.started: dict[str, float] = {}  # trial id -> when it was suggested

    def set_search_properties(self, metric: Any, mode: Any, config: Any, **spec: Any) -> bool:
        return bool(self.inner.set_search_properties(metric, mode, config, **spec))

    def suggest(self, trial_id: str) -> Any:
        if self.halted():
            return Searcher.FINISHED
        if not self.ledger.may_start(0.0):  # nothing left: not even a free trial is asked
            self.ledger.stopped = True
            return Searcher.FINISHED
        suggestion = self.inner.suggest(trial_id)
        if not isinstance(suggestion, dict):
            return suggestion
        worst = self.worst_usd(suggestion)
        if not self.ledger.may_start(worst):
            self.ledger.refuse(worst)
            self.refused(int(suggestion.get("optuna_trial_number", -1)))
            self.inner.on_trial_complete(trial_id, error=True)
            return Searcher.FINISHED
        self.ledger.start(trial_id, worst)
        self.started[trial_id] = time.monotonic()
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ledger = self.ledger
        began = self.started.pop(trial_id, None)
        final = result if result and not error and result.get("stage", "final") == "final" else None
        if final is not None:
            ledger.finish(trial_id, trial_spent_usd(final))
        else:  # failed, or stopped early: charged the time it ran
            spent = 0.0 if began is None else time.monotonic() - began
            ledger.finish(trial_id, spent * ledger.usd_per_second)
        # A trial the scheduler (ASHA) stopped early has only a partial score: no result,
        # so Optuna records it PRUNED, not COMPLETE with that score.
        self.inner.on_trial_complete(trial_id, result=final, error=error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


class FailFast(Callback):
    """Reads each failure as it happens; `halted()` turns true once the first failures are
    one error repeating and no trial has finished (`finished`: the sweep's so far), or once
    a failure says the device is full, so the searcher starts no more trials in this round."""

    def __init__(self, finished: int) -> None:
        self.finished = finished
        self.reasons: list[str] = []

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
        self.finished += (trial.last_result or {}).get("stage") == "final"

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
        self.reasons.append(failure_reason(trial))

    def halted(self) -> bool:
        if any(no_space(reason) for reason in self.reasons):
            return True
        return self.finished == 0 and systematic(self.reasons) is not None


class PendingTimeout(Callback, Stopper):
    """Ends the round when trials have waited `timeout_s` for the cluster's resources while
    none of the sweep's trials ran (a busy cluster: others hold what they ask for), instead
    of waiting without bound; `expired` then says so. Waiting for the sweep's own running
    trials (more concurrency than room) is progress, not waiting."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.idle_since: float | None = None
        self.expired = ""

    def on_step_begin(self, iteration: int, trials: list[Any], **_: Any) -> None:
        pending = [t for t in trials if t.status == "PENDING"]
        if not pending or any(t.status == "RUNNING" for t in trials):
            self.idle_since = None
            return
        now = time.monotonic()
        self.idle_since = self.idle_since if self.idle_since is not None else now
        if now - self.idle_since > self.timeout_s and not self.expired:
            asked = getattr(pending[0].placement_group_factory, "required_resources", {})
            wanted = ", ".join(f"{k} {v:g}" for k, v in sorted(asked.items())) or "resources"
            self.expired = (
                f"trial {point_label(pending[0].config)} waited {now - self.idle_since:.0f} s "
                f"for {wanted} that the cluster did not free (--pending-timeout "
                f"{self.timeout_s:g})"
            )

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self.expired)


class Progress(Callback):
    """A line per finished or failed trial, and a heartbeat at least every HEARTBEAT_S while
    trials run."""

    def __init__(
        self,
        total: int,
        study: Any,
        out: TextIO,
        spent_usd: float = 0.0,
        budget_of: Callable[[dict[str, Any]], float] | None = None,  # a trial's B (picklable)
        failed: int = 0,
    ) -> None:
        self.total, self.out, self.budget_of = total, out, budget_of
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        self.tally = Tally.of(done)
        self.tally.spent_usd = spent_usd  # the sweep's spend so far (earlier rounds, drivers)
        self.tally.failed = failed  # and its failures so far
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
            f"{point_label(t.config)} for {now - self.running[t.trial_id]:.0f} s"
            + (f" ({self.stage[t.trial_id]})" if t.trial_id in self.stage else "")
            for t in trials
            if t.trial_id in self.running
        ]
        self._line("running " + ", ".join(alive))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
        self.running.pop(trial.trial_id, None)
        result = trial.last_result or {}
        if result.get("stage") != "final":
            return
        t = self.tally
        t.done += 1
        t.spent_usd += trial_spent_usd(result)  # as the spending cap counts it
        learned = "student" not in learned_nothing(result.get("degenerate"))
        if learned and (t.best is None or result["score"] > t.best):  # a constant is no best
            t.best, t.best_fraction = float(result["score"]), result["compute_fraction"]
        # What this allocation costs, against its own budget: never a sum over trials.
        allocation = f"${float(result.get('practitioner_usd', 0.0)):.2f}"
        if self.budget_of is not None:
            allocation += f" of B=${self.budget_of(trial.config):g}"
        self._line(
            f"trial {point_label(trial.config)} score={result['score']:.4f}, "
            f"allocation {allocation}"
        )
        for line in degenerate_lines(result):  # a model that learned nothing, named
            self._line(f"trial {point_label(trial.config)}: {line}")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.tally.failed += 1
        self._line(f"trial {trial.trial_id} FAILED: {failure_reason(trial)}")

    def _line(self, event: str) -> None:
        t = self.tally
        if t.best is not None:
            best = f"{t.best:.4f} at f={t.best_fraction:.2f}"
        else:  # before any trial, or when every one so far learned nothing
            best = "none learned yet" if t.done else "-"
        spent = f"{t.spent_usd:.2f}" if t.spent_usd >= 1 else f"{t.spent_usd:.4f}"
        print(
            f"[{t.done}/{self.total} done, {len(self.running)} running, {t.failed} failed] "
            f"{event}; best {best}; sweep spent ${spent} in all",
            file=self.out,
            flush=True,
        )
        self.last_line_s = time.monotonic()

    # A stream (e.g. pytest's capture) does not pickle: a restored callback writes to stdout.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "out"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, out=sys.stdout)


class SummaryRefresh(Callback):
    """Refreshes the sweep's answer in MLflow as trials finish (descriptions at once,
    artifacts at most every ARTIFACTS_EVERY_S) and at the end of the round, through the
    sweep's refresher thread. A failure to write it is logged and never stops the sweep."""

    def __init__(self, tracking_uri: str, task: str, sweep: str, parent_run_id: str) -> None:
        self.args = (tracking_uri, task, sweep, parent_run_id)
        self.last_artifacts_s = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
        due = time.monotonic() - self.last_artifacts_s >= ARTIFACTS_EVERY_S
        if due:
            self.last_artifacts_s = time.monotonic()
        refresher(*self.args).request(artifacts=due)

    def on_experiment_end(self, trials: list[Any], **_: Any) -> None:
        refresher(*self.args).finish()


def report_intermediate(metrics: dict[str, Any]) -> None:
    """Forward distillation progress to Tune (for ASHA and Optuna's intermediate values);
    step counts (no score) are for people watching a single trial, not for the search."""
    if metrics.get("stage") == "final" or "score" not in metrics:
        return
    tune.report({"score": float(metrics["score"]), "stage": str(metrics.get("stage"))})
