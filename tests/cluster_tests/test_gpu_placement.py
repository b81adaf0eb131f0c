"""Ray's GPU placement, without a GPU: a local Ray declares two logical GPUs and a real grid
sweep runs on it, distillation trials holding a whole GPU each and annotation-only trials
half of one. Every trial records what Ray gave it (slow)."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
cloudpickle = pytest.importorskip("cloudpickle")

from objectives.standins import synthetic_trial  # noqa: E402
from objectives.trial_config import Report, TrialConfig, TrialResult  # noqa: E402
from sweep.engine.tuner import _quiet, run_sweep  # noqa: E402
from sweep.tracking.mlflow_store import Tracker  # noqa: E402
from tests.sweep_tests.conftest import synthetic_config  # noqa: E402

pytestmark = pytest.mark.slow
# Trials run in Ray workers, which cannot import this test module: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

LOGICAL_GPUS = 2
WORK_SECONDS = 1.0


@pytest.fixture
def ray_with_logical_gpus() -> Iterator[None]:
    if ray.is_initialized():
        pytest.skip("another Ray session is running in this process")
    _quiet()
    ray.init(
        num_cpus=6,
        num_gpus=LOGICAL_GPUS,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir="/tmp/doa-ray-gpus",  # short: Ray's socket paths must stay under ~107 bytes
    )
    yield
    ray.shutdown()


def recording_trial(cfg: TrialConfig, report: Report | None, folder: str) -> TrialResult:
    """The stand-in trial, after writing down the devices Ray gave it and when it held them.

    An annotation-only trial first waits (up to 30 s) until a second one is running, so
    that the sweep always has two fractional trials at once: whether they share a GPU is
    then Ray's choice, which the test checks.
    """
    context = ray.get_runtime_context()
    annotating = cfg.compute_fraction == 0
    if annotating:
        Path(folder, f"annotating-{cfg.n_labels}").touch()
        deadline = time.monotonic() + 30
        while len(list(Path(folder).glob("annotating-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    started = time.time()
    time.sleep(WORK_SECONDS)
    record = {
        "name": f"L={cfg.n_labels}/U={cfg.max_unlabelled or 0}",
        "annotating": annotating,
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": context.get_assigned_resources().get("GPU", 0.0),
        "start": started,
        "end": time.time(),
    }
    Path(folder, f"{record['name'].replace('/', '_')}.json").write_text(json.dumps(record))
    return synthetic_trial(cfg, report)


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["start"] < b["end"] and b["start"] < a["end"])


@pytest.mark.usefixtures("ray_with_logical_gpus")
def test_distillation_trials_hold_whole_gpus_and_annotation_trials_share_one(
    tmp_path: Path,
) -> None:
    records_dir = tmp_path / "records"
    records_dir.mkdir()
    cfg = synthetic_config(
        tmp_path,
        name="gpus",
        n_seed_labels=0,
        budget_usd=0.0,  # a grid has no sweep-wide budget; each point's compute is capped
        compute_allowance_usd=300.0,
        grid_labels=[100, 200, 300],
        grid_unlabelled=[0, 1000],  # 0: annotation only; 1000: distillation
        n_trials=6,
        concurrency=6,
        cpus_per_trial=1,
        teacher_gpus=1,
        student_gpus=0.5,
    )

    def objective(trial: TrialConfig, report: Report | None) -> TrialResult:
        return recording_trial(trial, report, str(records_dir))

    summary = run_sweep(cfg, objective=objective)
    assert summary.n_finished == 6 and summary.n_failed == 0, summary.failures
    records = [json.loads(p.read_text()) for p in records_dir.glob("*.json")]
    assert len(records) == 6

    for r in records:
        # One device each, and the process sees that device only.
        assert len(r["gpu_ids"]) == 1 and r["cuda_visible_devices"] == r["gpu_ids"][0], r
        assert r["gpus"] == (0.5 if r["annotating"] else 1.0), r
    assert sum(not r["annotating"] for r in records) == 3

    shared = False
    for a, b in itertools.combinations(records, 2):
        if _overlap(a, b) and a["gpu_ids"] == b["gpu_ids"]:
            # Only fractional trials may run on one GPU at the same time.
            assert a["annotating"] and b["annotating"], (a, b)
            shared = True
    assert shared, "no two annotation-only trials ran on one GPU at once"

    # MLflow names the devices each trial ran on (the `ray.gpu_ids` tag).
    runs = Tracker(cfg.tracking).trial_runs(task="fever", sweep="gpus")
    tagged = {r.data.tags["mlflow.runName"]: r.data.tags["ray.gpu_ids"] for r in runs}
    assert tagged == {f"fever/{r['name']}": r["gpu_ids"][0] for r in records}
