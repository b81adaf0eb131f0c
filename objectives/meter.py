"""The compute meter: every training and inference step of a trial draws on one budget.

Two ways to price a step:
- `estimated`: FLOPs (6 x params x tokens to train, 2 x params x tokens to infer) divided by
  a hardware profile's peak FLOP/s times its utilisation. Exact and reproducible: the right
  default for planning, tests and sweeps whose results must not depend on machine load.
- `measured`: wall-clock seconds of the step times the trial's devices (injectable clock).

The meter never lets a step start that it predicts would overspend: the prediction is the
exact cost when estimated, and the dearest step seen so far when measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

MeterMode = Literal["estimated", "measured"]
StepKind = Literal["train", "infer"]


@dataclass(frozen=True)
class HardwareProfile:
    """Peak dense FLOP/s of one device and the fraction a training loop really reaches."""

    name: str
    peak_flops: float
    utilisation: float

    def __post_init__(self) -> None:
        if self.peak_flops <= 0 or not 0 < self.utilisation <= 1:
            raise ValueError(
                f"Hardware profile {self.name!r}: `peak_flops > 0 and 0 < utilisation <= 1` "
                f"must hold, but got peak_flops={self.peak_flops}, "
                f"utilisation={self.utilisation}."
            )

    @property
    def flops_per_second(self) -> float:
        return self.peak_flops * self.utilisation


HARDWARE_PROFILES = MappingProxyType(
    {
        # The paper's device: A100 bf16 dense peak; 40 % is typical for T5 fine-tuning.
        "a100": HardwareProfile("a100", 312e12, 0.40),
        "h100": HardwareProfile("h100", 989e12, 0.40),
        # Two x86 cores, fp32 PyTorch: 9e10 FLOP/s measured training MiniLM here (README).
        "cpu": HardwareProfile("cpu", 2.0e11, 0.45),
    }
)


def get_profile(name: str) -> HardwareProfile:
    if name not in HARDWARE_PROFILES:
        raise ValueError(
            f"Unknown hardware profile={name!r}; valid: {', '.join(sorted(HARDWARE_PROFILES))}."
        )
    return HARDWARE_PROFILES[name]


def step_flops(kind: StepKind, n_params: int, n_tokens: int) -> float:
    """Kaplan et al.'s rule of thumb: 6 N D to train, 2 N D to run forward."""
    return (6.0 if kind == "train" else 2.0) * n_params * n_tokens


class BudgetExhausted(Exception):
    """Raised inside a stage when the next step would overspend; stages catch it."""


class ComputeMeter:
    """Charges steps against `budget_usd` and refuses steps it cannot afford."""

    def __init__(
        self,
        budget_usd: float,
        usd_per_device_hour: float,
        mode: MeterMode = "estimated",
        profile: HardwareProfile = HARDWARE_PROFILES["a100"],
        n_devices: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not math.isfinite(budget_usd) or budget_usd < 0:
            raise ValueError(f"`budget_usd >= 0` must hold, but got budget_usd={budget_usd!r}.")
        if mode not in ("estimated", "measured"):
            raise ValueError(f"Unknown meter mode={mode!r}; valid: estimated, measured.")
        if n_devices < 1:
            raise ValueError(f"`n_devices >= 1` must hold, but got n_devices={n_devices!r}.")
        self.budget_usd = budget_usd
        self.usd_per_device_hour = usd_per_device_hour
        self.mode: MeterMode = mode
        self.profile = profile
        self.n_devices = n_devices
        self.clock = clock
        self.device_seconds = 0.0
        self.flops = 0.0
        self._dearest_step_seconds = 0.0
        self.overrun_device_seconds = 0.0
        self._started_at: float | None = None

    @property
    def spent_usd(self) -> float:
        return self.device_seconds / 3600.0 * self.usd_per_device_hour

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.budget_usd - self.spent_usd)

    def usd_for_flops(self, flops: float) -> float:
        seconds = flops / self.profile.flops_per_second
        return seconds / 3600.0 * self.usd_per_device_hour

    def predicted_step_seconds(self, flops: float) -> float:
        estimate = flops / self.profile.flops_per_second
        if self.mode == "estimated":
            return estimate
        # Wall-clock steps vary: plan for 25 % over the dearest step seen (or the estimate
        # before the first step), so that a noisy step rarely crosses the budget.
        return 1.25 * max(estimate, self._dearest_step_seconds) * self.n_devices

    def can_afford(self, flops: float) -> bool:
        predicted = self.device_seconds + self.predicted_step_seconds(flops)
        # A hair of slack for float rounding; money is compared in device-seconds.
        return predicted / 3600.0 * self.usd_per_device_hour <= self.budget_usd + 1e-12

    def begin(self, flops: float) -> None:
        """Start a step of `flops`, or raise BudgetExhausted if it would overspend."""
        if not self.can_afford(flops):
            raise BudgetExhausted(
                f"next step needs ~${self.usd_for_flops(flops):.6f}, ${self.remaining_usd:.6f} left"
            )
        self._started_at = self.clock()

    def end(self, flops: float) -> None:
        """Charge the step started by `begin`."""
        if self._started_at is None:
            raise RuntimeError("ComputeMeter.end() without begin()")
        elapsed = max(0.0, self.clock() - self._started_at)
        self._started_at = None
        self.flops += flops
        if self.mode == "estimated":
            self.device_seconds += flops / self.profile.flops_per_second
        else:
            self._dearest_step_seconds = max(self._dearest_step_seconds, elapsed)
            charged = self.device_seconds + elapsed * self.n_devices
            cap = self.budget_usd / self.usd_per_device_hour * 3600.0
            # A step slower than planned cannot be undone: the allocation ledger stops at
            # the budget and the excess is kept in `overrun_device_seconds` (and in the
            # real-spend ledger, which counts every second).
            self.overrun_device_seconds += max(0.0, charged - cap)
            self.device_seconds = min(charged, cap)

    def charge_usd(self, usd: float, flops: float = 0.0) -> None:
        """Charge a stage reused from the cache at what it cost when it was built."""
        if usd > self.remaining_usd + 1e-9:
            raise BudgetExhausted(f"reused stage costs ${usd:.6f}, ${self.remaining_usd:.6f} left")
        self.device_seconds += usd / self.usd_per_device_hour * 3600.0
        self.flops += flops


class RealClock:
    """Real device-seconds of a trial process, whatever the meter charges (the sweep ledger)."""

    def __init__(self, n_devices: int = 1, clock: Callable[[], float] = time.perf_counter):
        self.n_devices = n_devices
        self.clock = clock
        self.started = clock()

    @property
    def device_seconds(self) -> float:
        return (self.clock() - self.started) * self.n_devices
