"""A sweep's spending cap (`--max-spend`): no trial starts that could take the sweep over it.

What a trial spends is its sweep ledger (`sweep_spent_usd`, the real device-seconds it
used); a stand-in objective uses none, so it counts what its allocation's compute would
cost (`compute_spent_usd`), as `sweep plan` does (`sweep.tracking.schema.trial_spent_usd`).

Before a trial starts it is priced at its worst: the whole compute of its allocation
(`f x B`; a grid point's compute allowance), which its meter never lets it pass, and for
real trials at least the costliest real spend of a finished trial (what the meter does not
charge: the student's own training, evaluation, a meter that prices compute otherwise than
by the device time it takes). Trials still running count at their worst too. If what was
spent, the running trials and the new one could pass the cap, the new trial does not start
and the sweep starts no more (those running finish). A failed trial, or one the scheduler
stopped early, spent real time too: it is charged its wall-clock time (nothing for
stand-ins). The ledger's arithmetic is here; `sweep.engine.ray_hooks.SpendCap` applies it
to the searcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CENT_TOLERANCE_USD = 1e-6  # rounding of the dollars compared, far below a cent


@dataclass
class SpendLedger:
    """What a sweep has spent so far, across its Tune rounds."""

    cap_usd: float | None
    usd_per_second: float = 0.0  # what a failed trial's wall-clock time is charged
    real: bool = False  # real trials: priced at least at the costliest finished one
    spent_usd: float = 0.0
    largest_usd: float = 0.0
    committed: dict[str, float] = field(default_factory=dict)  # running trial -> its worst
    stopped: bool = False  # a trial was refused: the sweep is over
    refused_usd: float = 0.0  # the refused trial's worst

    def record(self, usd: float) -> None:
        self.spent_usd += usd
        self.largest_usd = max(self.largest_usd, usd)

    def price_usd(self, worst_usd: float) -> float:
        """A trial's price at its worst (`worst_usd`: its allocation's compute)."""
        return max(worst_usd, self.largest_usd) if self.real else worst_usd

    def may_start(self, worst_usd: float) -> bool:
        if self.cap_usd is None:
            return True
        committed = self.spent_usd + sum(self.committed.values())
        return committed + self.price_usd(worst_usd) <= self.cap_usd + CENT_TOLERANCE_USD

    def start(self, trial_id: str, worst_usd: float) -> None:
        self.committed[trial_id] = self.price_usd(worst_usd)

    def finish(self, trial_id: str, usd: float) -> None:
        self.committed.pop(trial_id, None)
        self.record(usd)

    def refuse(self, worst_usd: float) -> None:
        self.stopped, self.refused_usd = True, self.price_usd(worst_usd)

    @property
    def running(self) -> int:
        return len(self.committed)

    def describe(self) -> str:
        return (
            f"stopped at the spending cap: ${self.spent_usd:.2f} spent of ${self.cap_usd:.2f}; "
            f"the next trial could cost ${self.refused_usd:.2f} at its worst"
        )
