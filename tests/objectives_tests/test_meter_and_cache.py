from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from objectives.budget import PAPER_COST_MODELS
from objectives.cache import StageCache, content_key, examples_fingerprint
from objectives.data import Example
from objectives.meter import (
    HARDWARE_PROFILES,
    BudgetExhausted,
    ComputeMeter,
    HardwareProfile,
    get_profile,
    meter_cost_model,
    step_flops,
)
from objectives.tasks import TaskSpec, get_task

PROFILE = HardwareProfile("test", peak_flops=1e12, utilisation=0.5)  # 5e11 FLOP/s


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_flop_rule_of_thumb() -> None:
    assert step_flops("train", 1_000, 10) == 60_000
    assert step_flops("infer", 1_000, 10) == 20_000


def test_estimated_meter_charges_flops_exactly() -> None:
    # 1.8e15 FLOPs at 5e11 FLOP/s is 3600 s: one device-hour, $1.875.
    meter = ComputeMeter(2.0, 1.875, "estimated", PROFILE)
    meter.begin(1.8e15)
    meter.end(1.8e15)
    assert meter.device_seconds == pytest.approx(3600)
    assert meter.spent_usd == pytest.approx(1.875)
    assert not meter.can_afford(1.8e15)
    with pytest.raises(BudgetExhausted):
        meter.begin(1.8e15)
    assert meter.spent_usd == pytest.approx(1.875)  # a refused step costs nothing


def test_measured_meter_uses_the_clock_and_devices() -> None:
    clock = FakeClock()
    meter = ComputeMeter(1.0, 3600.0, "measured", PROFILE, n_devices=2, clock=clock)
    meter.begin(0)
    clock.now += 0.1
    meter.end(0)
    assert meter.device_seconds == pytest.approx(0.2)  # 0.1 s on 2 devices
    assert meter.spent_usd == pytest.approx(0.2)
    # The next step is predicted at 1.25 x the dearest step (0.25 $): three more fit, not four.
    steps = 0
    while meter.can_afford(0):
        meter.begin(0)
        clock.now += 0.1
        meter.end(0)
        steps += 1
    assert steps == 3 and meter.spent_usd <= 1.0


def test_measured_overrun_is_capped_and_recorded() -> None:
    clock = FakeClock()
    meter = ComputeMeter(1.0, 3600.0, "measured", PROFILE, clock=clock)
    meter.begin(0)
    clock.now += 5.0  # a step far slower than planned
    meter.end(0)
    assert meter.spent_usd == pytest.approx(1.0)
    assert meter.overrun_device_seconds == pytest.approx(4.0)


def test_reused_stage_is_charged_at_its_build_cost() -> None:
    meter = ComputeMeter(1.0, 2.0, "estimated", PROFILE)
    meter.charge_usd(0.5)
    assert meter.spent_usd == pytest.approx(0.5) and meter.remaining_usd == pytest.approx(0.5)
    with pytest.raises(BudgetExhausted):
        meter.charge_usd(0.6)


FEVER = PAPER_COST_MODELS["fever"]  # a = 3.00 (assumed), b = 4.29, d = 0.78 dollars


def test_paper_meter_charges_the_papers_cost_model_exactly() -> None:
    meter = ComputeMeter(20.0, 1.875, "paper", PROFILE, cost_model=FEVER)
    # The teacher on 500 labels, as a whole: a + b L / 1000 = 3 + 4.29 * 0.5 = 5.145.
    assert meter.teacher_stage_usd(500) == pytest.approx(5.145, abs=1e-12)
    meter.charge_usd(meter.teacher_stage_usd(500))
    assert meter.spent_usd == 3.0 + 4.29 * 500 / 1000
    # Steps inside a paid stage are counted and timed, never charged or refused.
    meter.begin(1e30)
    meter.end(1e30)
    assert meter.flops == 1e30 and meter.spent_usd == 3.0 + 4.29 * 500 / 1000
    # Distillation: the $14.855 left buy floor(14.855 / 0.00078) = 19044 examples,
    # d U / 1000 = 0.78 * 19.044 = 14.85432 dollars.
    n = meter.affordable_unlabelled()
    assert n == 19044
    meter.charge_usd(meter.distillation_stage_usd(n))
    assert meter.spent_usd == pytest.approx(5.145 + 14.85432, abs=1e-9)
    assert meter.remaining_usd < 0.78 / 1000  # not one more example is affordable
    # Device-seconds stay the dollars' worth at the price, so every ledger agrees.
    assert meter.device_seconds == pytest.approx(meter.spent_usd / 1.875 * 3600)


def test_paper_meter_needs_a_cost_model_and_names_what_to_add(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cost model"):
        ComputeMeter(1.0, 1.875, "paper", PROFILE)
    byo = TaskSpec("reviews", "classification", "accuracy", 0.08, labels=("neg", "pos"))
    with pytest.raises(ValueError) as refused:
        meter_cost_model("paper", byo, charge_student_training=False)
    message = str(refused.value)
    assert "\n" not in message and "'reviews'" in message and "[cost_model]" in message
    assert "a_usd, b_usd_per_1k_labelled and d_usd_per_1k_unlabelled" in message
    assert meter_cost_model("estimated", byo, charge_student_training=False) is None
    assert meter_cost_model("paper", get_task("fever"), False) == FEVER
    # Tasks without the paper's figures carry their own, stated as assumptions.
    assert get_task("bbc_news").cost_model == PAPER_COST_MODELS["stanceosaurus"]
    with pytest.raises(ValueError, match="no term for the student's own training"):
        meter_cost_model("paper", get_task("fever"), charge_student_training=True)


def test_reused_stage_is_repriced_at_this_trials_price_and_meter() -> None:
    # A stage that took 1.8e15 FLOPs and 1,800 real device-seconds to build.
    flops, seconds = 1.8e15, 1800.0
    # Estimated: its FLOPs on this profile (5e11 FLOP/s: 3,600 s) at this price.
    for price in (1.875, 3.75):
        meter = ComputeMeter(100.0, price, "estimated", PROFILE)
        meter.charge_reused_stage(flops, seconds)
        assert meter.spent_usd == pytest.approx(price)  # one device-hour
        assert meter.flops == flops  # the same FLOPs, whatever the price
    faster = ComputeMeter(100.0, 1.875, "estimated", HardwareProfile("x", 2e12, 0.5))
    faster.charge_reused_stage(flops, seconds)
    assert faster.spent_usd == pytest.approx(1.875 / 2)
    # Measured: the device-seconds building it took, at this price.
    measured = ComputeMeter(100.0, 3.75, "measured", PROFILE)
    measured.charge_reused_stage(flops, seconds)
    assert measured.spent_usd == pytest.approx(3.75 / 2) and measured.flops == flops
    # Paper: charged by size before the lookup; the reuse adds only its FLOPs.
    paper = ComputeMeter(100.0, 3.75, "paper", PROFILE, cost_model=FEVER)
    paper.charge_reused_stage(flops, seconds)
    assert paper.spent_usd == 0.0 and paper.flops == flops
    poor = ComputeMeter(0.5, 1.875, "estimated", PROFILE)
    with pytest.raises(BudgetExhausted):
        poor.charge_reused_stage(flops, seconds)


def test_bad_meter_values() -> None:
    with pytest.raises(ValueError, match="budget_usd=-1"):
        ComputeMeter(-1, 1.0)
    with pytest.raises(ValueError, match="mode='exact'"):
        ComputeMeter(1, 1.0, "exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="profile='tpu'; valid: a100, cpu, h100"):
        get_profile("tpu")
    assert set(HARDWARE_PROFILES) == {"a100", "h100", "cpu"}


def test_content_keys_are_stable_and_sensitive() -> None:
    assert content_key("teacher", {"a": 1, "b": 2}) == content_key("teacher", {"b": 2, "a": 1})
    assert content_key("teacher", {"a": 1}) != content_key("teacher", {"a": 2})
    assert content_key("teacher", {"a": 1}) != content_key("soft", {"a": 1})
    # Data is keyed by content, not by the path it was read from.
    rows = (Example("a", "b"), Example("c", "d"))
    assert examples_fingerprint(rows) == examples_fingerprint(list(rows))
    assert examples_fingerprint(rows) != examples_fingerprint((Example("a", "b"),))
    assert examples_fingerprint(rows) != examples_fingerprint(rows[::-1])


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError), cache.writer("k", {"usd": 1.0}) as folder:
        (folder / "model.pt").write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert cache.get("k") is None
    assert [p.name for p in tmp_path.iterdir()] == []
    with cache.writer("k", {"usd": 1.0}) as folder:
        (folder / "model.pt").write_bytes(b"whole")
    entry = cache.get("k")
    assert entry is not None and entry.meta == {"usd": 1.0}
    assert (entry.path / "model.pt").read_bytes() == b"whole"


def _build_once(root: str, log: str) -> None:
    cache = StageCache(root)
    with cache.lock("stage"):
        if cache.get("stage") is None:
            with open(log, "a") as handle:
                handle.write("built\n")
            time.sleep(0.3)  # the other process arrives while this one builds
            with cache.writer("stage", {"usd": 1.0}) as folder:
                (folder / "x").write_text("x")


def test_two_trials_needing_one_stage_build_it_once(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_build_once, args=(str(tmp_path / "c"), str(log))) for _ in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert log.read_text() == "built\n"


def test_disabled_cache_always_misses(tmp_path: Path) -> None:
    cache = StageCache(None)
    with cache.writer("k", {}) as folder:
        (folder / "x").write_text("x")
    assert cache.get("k") is None and not cache.enabled


def test_a_writer_killed_mid_write_leaves_no_entry(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    marker = tmp_path / "half-written"
    code = (
        "import sys, time; from pathlib import Path; from objectives.cache import StageCache\n"
        "cache = StageCache(sys.argv[1])\n"
        "with cache.lock('teacher-x'), cache.writer('teacher-x', {'usd': 1.0}) as folder:\n"
        "    (folder / 'model.pt').write_bytes(b'half')\n"
        "    Path(sys.argv[2]).touch()\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c"), str(marker)])
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    cache = StageCache(tmp_path / "c")
    assert cache.get("teacher-x") is None  # nothing a later trial would read
    # The dead writer's lock went with its process: this does not block.
    with cache.lock("teacher-x"), cache.writer("teacher-x", {"usd": 1.0}) as folder:
        (folder / "model.pt").write_bytes(b"whole")
    entry = cache.get("teacher-x")
    assert entry is not None and (entry.path / "model.pt").read_bytes() == b"whole"
