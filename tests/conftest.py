"""Shared fixtures: offline environment, the team's data samples, gpu gating."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.tiny_task import no_signal_task, tiny_task  # noqa: F401  (fixtures for every package)

# `sweep run` on the closed-form stand-in: what the sweep tests vary the rest around.
SWEEP_RUN = [
    "run",
    "--task",
    "fever",
    "--budget",
    "300",
    "--seed-labels",
    "1000",
    "--objective",
    "synthetic",
]
SWEEP_CLI = [sys.executable, "-m", "sweep", *SWEEP_RUN]

# Small real samples shipped with the repository (fever, nq); see tests/data/README.md.
REPO_DATA = Path(__file__).resolve().parent / "data"


def restore_sigint() -> None:
    """`preexec_fn` of a child a test will Ctrl-C: a shell that started the test run in the
    background (`cmd &`) leaves SIGINT ignored, children inherit that, and Python then never
    raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def shared_data() -> Path:
    """The larger samples of every paper task, from `DOA_DATA_DIR` (CI points it at the
    team's samples); tests that need them skip cleanly without it."""
    folder = Path(os.environ.get("DOA_DATA_DIR", "/nonexistent"))
    if not (folder / "wlp" / "train.jsonl").is_file():
        pytest.skip("DOA_DATA_DIR does not hold every task's samples")
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
