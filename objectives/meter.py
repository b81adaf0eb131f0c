"""The compute meter: every training and inference step of a trial draws on one budget.

Three ways to price compute:
- `estimated`: FLOPs (6 x params x tokens to train, 2 x params x tokens to infer) divided by
  a hardware profile's peak FLOP/s times its utilisation. Exact and reproducible: the right
  default for planning, tests and sweeps whose results must not depend on machine load.
- `measured`: wall-clock seconds of the step times the trial's devices (injectable clock).
- `paper`: the paper's fitted cost model of the task (`objectives.budget.CostModel`), by
  stage size, whatever the hardware: the teacher's fine-tune costs a + b L / 1000 dollars,
  charged as a whole before it starts; pseudo-labels and distillation d U / 1000, charged
  for the U examples the money affords before they start. Steps inside a paid stage are
  timed and counted (FLOPs) but cost nothing more.

The meter never lets a step start that it predicts would overspend: the prediction is the
exact cost when estimated, and the dearest step seen so far when measured. Every mode also
records the real device-seconds and FLOPs of its steps, so that a stage built once can be
re-priced at another trial's price and meter (`reused_stage_usd`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from objectives.budget import CostModel

if TYPE_CHECKING:
    from objectives.tasks import TaskSpec

MeterMode = Literal["estimated", "measured", "paper"]
METER_MODES: tuple[MeterMode, ...] = ("estimated", "measured", "paper")
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
        # Two x86 cores, fp32 PyTorch: 9e10 FLOP/s measured training MiniLM (docs/money.md).
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
    """Charges steps and stages against `budget_usd` and refuses what it cannot afford.

    Money is kept in two parts: metered steps in device-seconds (`estimated`, `measured`)
    and whole stages in dollars (a cached stage re-priced, or a `paper` stage), so that a
    stage's price is charged exactly, with no round trip through device-seconds.
    """

    def __init__(
        self,
        budget_usd: float,
        usd_per_device_hour: float,
        mode: MeterMode = "estimated",
        profile: HardwareProfile = HARDWARE_PROFILES["a100"],
        n_devices: int = 1,
        clock: Callable[[], float] = time.perf_counter,
        cost_model: CostModel | None = None,
    ) -> None:
        if not math.isfinite(budget_usd) or budget_usd < 0:
            raise ValueError(f"`budget_usd >= 0` must hold, but got budget_usd={budget_usd!r}.")
        if mode not in METER_MODES:
            raise ValueError(f"Unknown meter mode={mode!r}; valid: {', '.join(METER_MODES)}.")
        if mode == "paper" and cost_model is None:
            raise ValueError("The paper meter needs the task's cost model (a, b, d).")
        if n_devices < 1:
            raise ValueError(f"`n_devices >= 1` must hold, but got n_devices={n_devices!r}.")
        self.budget_usd = budget_usd
        self.usd_per_device_hour = usd_per_device_hour
        self.mode: MeterMode = mode
        self.profile = profile
        self.n_devices = n_devices
        self.clock = clock
        self.cost_model = cost_model
        self.flops = 0.0
        # Real device-seconds of the steps this meter timed, in every mode: what a cache
        # entry records, so that the `measured` meter can re-price it.
        self.measured_device_seconds = 0.0
        self._timed_flops = 0.0  # the FLOPs of the steps timed (not of reused stages)
        self.overrun_device_seconds = 0.0
        self._step_device_seconds = 0.0  # charged steps (estimated, measured)
        self._stage_usd = 0.0  # charged whole stages (re-priced cache entries, paper stages)
        self._dearest_step_seconds = 0.0
        self._started_at: float | None = None

    @property
    def device_seconds(self) -> float:
        """Charged device-seconds: metered steps, plus whole stages at this meter's price."""
        return self._step_device_seconds + self._stage_usd / self.usd_per_device_hour * 3600.0

    @property
    def spent_usd(self) -> float:
        return self._step_device_seconds / 3600.0 * self.usd_per_device_hour + self._stage_usd

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.budget_usd - self.spent_usd)

    def usd_for_flops(self, flops: float) -> float:
        seconds = flops / self.profile.flops_per_second
        return seconds / 3600.0 * self.usd_per_device_hour

    def planned_usd(self, flops: float) -> float:
        """What steps of `flops` in all are planned to cost: exact when estimated; when
        measured, at the slower of the profile and the rate this trial's steps ran at."""
        usd = self.usd_for_flops(flops)
        if self.mode != "measured" or self._timed_flops == 0.0:
            return usd
        seconds_per_flop = self.measured_device_seconds / self._timed_flops
        return max(usd, flops * seconds_per_flop / 3600.0 * self.usd_per_device_hour)

    def step_headroom_usd(self) -> float:
        """The money a measured meter keeps free for its next step's noise (see
        `predicted_step_seconds`): what a plan leaves unplanned so its last step runs."""
        if self.mode != "measured":
            return 0.0
        return self.predicted_step_seconds(0.0) / 3600.0 * self.usd_per_device_hour

    def predicted_step_seconds(self, flops: float) -> float:
        estimate = flops / self.profile.flops_per_second
        if self.mode == "estimated":
            return estimate
        # Wall-clock steps vary: plan for 25 % over the dearest step seen (or the estimate
        # before the first step), so that a noisy step rarely crosses the budget.
        return 1.25 * max(estimate, self._dearest_step_seconds) * self.n_devices

    def can_afford(self, flops: float) -> bool:
        if self.mode == "paper":
            return True  # the stage was paid for as a whole before its first step
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
        """Charge the step started by `begin` (the paper meter only counts it)."""
        if self._started_at is None:
            raise RuntimeError("ComputeMeter.end() without begin()")
        elapsed = max(0.0, self.clock() - self._started_at)
        self._started_at = None
        self.flops += flops
        self._timed_flops += flops
        self.measured_device_seconds += elapsed * self.n_devices
        if self.mode == "estimated":
            self._step_device_seconds += flops / self.profile.flops_per_second
        elif self.mode == "measured":
            self._dearest_step_seconds = max(self._dearest_step_seconds, elapsed)
            charged = self._step_device_seconds + elapsed * self.n_devices
            cap = (self.budget_usd - self._stage_usd) / self.usd_per_device_hour * 3600.0
            # A step slower than planned cannot be undone: the allocation ledger stops at
            # the budget and the excess is kept in `overrun_device_seconds` (and in the
            # real-spend ledger, which counts every second).
            self.overrun_device_seconds += max(0.0, charged - cap)
            self._step_device_seconds = min(charged, cap)

    def charge_usd(self, usd: float, flops: float = 0.0) -> None:
        """Charge a whole stage in dollars (a paper stage, or a reused one re-priced)."""
        if usd > self.remaining_usd + 1e-9:
            raise BudgetExhausted(f"stage costs ${usd:.6f}, ${self.remaining_usd:.6f} left")
        self._stage_usd += usd
        self.flops += flops

    # --- stages built earlier (the stage cache) -------------------------------------------

    def reused_stage_usd(self, flops: float, device_seconds: float) -> float:
        """What a stage built earlier costs at this meter's price: its FLOPs on this
        hardware profile (`estimated`) or the device-seconds it took (`measured`); 0 for
        the `paper` meter, which charged the stage by its size before looking it up."""
        if self.mode == "estimated":
            return self.usd_for_flops(flops)
        if self.mode == "measured":
            return device_seconds / 3600.0 * self.usd_per_device_hour
        return 0.0

    def charge_reused_stage(self, flops: float, device_seconds: float) -> None:
        """Charge a reused stage as if this trial had built it; BudgetExhausted if it cannot."""
        self.charge_usd(self.reused_stage_usd(flops, device_seconds), flops)

    # --- the paper meter: stages by their size --------------------------------------------

    def _paper_cost(self) -> CostModel:
        if self.mode != "paper" or self.cost_model is None:
            raise RuntimeError(
                f"stage sizes price compute only under the paper meter, not {self.mode!r}"
            )
        return self.cost_model

    def teacher_stage_usd(self, n_labelled: int) -> float:
        """a + b L / 1000: the teacher's fine-tune on `n_labelled` examples, as a whole."""
        return self._paper_cost().teacher_usd(n_labelled)

    def affordable_unlabelled(self) -> int:
        """How many unlabelled examples the money left pays to pseudo-label and distil."""
        return self._paper_cost().unlabelled_for(self.remaining_usd)

    def distillation_stage_usd(self, n_unlabelled: int) -> float:
        """d U / 1000: pseudo-labels and distillation on `n_unlabelled` examples."""
        return self._paper_cost().distillation_usd(n_unlabelled)


def meter_cost_model(
    mode: MeterMode, task: TaskSpec, charge_student_training: bool
) -> CostModel | None:
    """The cost model a meter of `mode` charges `task` by: None unless `paper`, which
    refuses, in one line each, a task without one and a charged student (the paper's cost
    model has no term for the student's own training)."""
    if mode != "paper":
        return None
    from objectives.tasks import require_cost_model  # tasks imports budget, not the meter

    cost = require_cost_model(task)
    if charge_student_training:
        raise ValueError(
            "--meter paper charges the teacher and distillation by the paper's cost model, "
            "which has no term for the student's own training; drop "
            "--charge-student-training or use --meter estimated."
        )
    return cost


class RealClock:
    """Real device-seconds of a trial process, whatever the meter charges (the sweep ledger)."""

    def __init__(self, n_devices: int = 1, clock: Callable[[], float] = time.perf_counter):
        self.n_devices = n_devices
        self.clock = clock
        self.started = clock()

    @property
    def device_seconds(self) -> float:
        return (self.clock() - self.started) * self.n_devices
