"""A sweep's spending cap (`--max-spend`): no trial starts that could take the sweep over it.

What a trial spends is its sweep ledger (`sweep_spent_usd`, the real device-seconds it
used); a stand-in objective uses none, so it counts what its allocation's compute would
cost (`compute_spent_usd`), as `sweep plan` does (`sweep.tracking.schema.trial_spent_usd`).
Before a trial starts, the trials still running and the new one are each assumed to cost as
much as the costliest finished trial; if that could pass the cap, the sweep starts no more
trials (those running finish). Until
a trial has finished there is nothing to go by: the first ones start, as many as the
concurrency allows. A failed trial, or one the scheduler stopped early, spent real time
too: it is charged its wall-clock time (nothing for stand-ins). The ledger's arithmetic is
here; `sweep.engine.ray_hooks.SpendCap` applies it to the searcher.
"""

from __future__ import annotations

from dataclasses import dataclass


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
