"""A sweep's spending cap (`--max-spend`): no trial starts that could take the sweep over it.

What a trial spends is its sweep ledger (`sweep_spent_usd`, the real device-seconds it
used); a stand-in objective uses none, so it counts what its allocation's compute would
cost (`compute_spent_usd`), as `sweep plan` does. Before a trial starts, the trials still
running and the new one are each assumed to cost as much as the costliest finished trial;
if that could pass the cap, the sweep starts no more trials (those running finish). Until
a trial has finished there is nothing to go by: the first ones start, as many as the
concurrency allows. A failed trial, or one the scheduler stopped early, spent real time
too: it is charged its wall-clock time (nothing for stand-ins).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def trial_spent_usd(result: Mapping[str, Any]) -> float:
    """The sweep ledger of one trial's result, or its allocation's compute for stand-ins."""
    real = float(result.get("sweep_spent_usd") or 0.0)
    return real if real > 0 else float(result.get("compute_spent_usd") or 0.0)


@dataclass
class SpendLedger:
    """What a sweep has spent so far, across its Tune rounds."""

    cap_usd: float | None
    usd_per_second: float = 0.0  # what a failed trial's wall-clock time is charged
    spent_usd: float = 0.0
    largest_usd: float = 0.0
    running: int = 0
    stopped: bool = False  # a trial was refused: the sweep is over

    def record(self, usd: float) -> None:
        self.spent_usd += usd
        self.largest_usd = max(self.largest_usd, usd)

    def may_start(self) -> bool:
        if self.cap_usd is None or self.largest_usd == 0.0:
            return True
        return self.spent_usd + (self.running + 1) * self.largest_usd <= self.cap_usd + 1e-9

    def describe(self) -> str:
        return (
            f"stopped at the spending cap: ${self.spent_usd:.2f} spent of ${self.cap_usd:.2f}; "
            f"the next trial could cost ${self.largest_usd:.2f} (the costliest so far)"
        )


def capped(searcher: Any, ledger: SpendLedger, halted: Callable[[], bool] = lambda: False) -> Any:
    """`searcher` (a Tune Searcher) that suggests nothing once `ledger` refuses a trial, or
    once `halted()` (the sweep's failures are systematic)."""
    from ray.tune.search import Searcher

    class SpendCap(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=searcher.metric, mode=searcher.mode)
            self.started: dict[str, float] = {}  # trial id -> when it was suggested

        def set_search_properties(self, metric: Any, mode: Any, config: Any, **spec: Any) -> bool:
            return bool(searcher.set_search_properties(metric, mode, config, **spec))

        def suggest(self, trial_id: str) -> Any:
            if halted():
                return Searcher.FINISHED
            if not ledger.may_start():
                ledger.stopped = True
                return Searcher.FINISHED
            suggestion = searcher.suggest(trial_id)
            if isinstance(suggestion, dict):
                ledger.running += 1
                self.started[trial_id] = time.monotonic()
            return suggestion

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            searcher.on_trial_result(trial_id, result)

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            ledger.running = max(0, ledger.running - 1)
            began = self.started.pop(trial_id, None)
            final = (
                result if result and not error and result.get("stage", "final") == "final" else None
            )
            if final is not None:
                ledger.record(trial_spent_usd(final))
            elif began is not None:  # failed, or stopped early: charged the time it ran
                ledger.record((time.monotonic() - began) * ledger.usd_per_second)
            # A trial the scheduler (ASHA) stopped early has only a partial score: no result,
            # so Optuna records it PRUNED, not COMPLETE with that score.
            searcher.on_trial_complete(trial_id, result=final, error=error)

        def save(self, checkpoint_path: str) -> None:
            searcher.save(checkpoint_path)

        def restore(self, checkpoint_path: str) -> None:
            searcher.restore(checkpoint_path)

    return SpendCap()
