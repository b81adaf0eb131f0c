"""Every benchmark still runs, in its tiny mode, and ends with its ratio (never timed here:
the figures themselves are recorded in bench/README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "orchestration.py",
        "search_efficiency.py",
        "stage_cache.py",
        "throughput.py",
        "scaling.py",
        "cost_model.py",
    ],
)
def test_benchmark_runs_and_prints_its_ratio_last(script: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / script), "--tiny"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    ratio = re.search(r": (\d+\.\d+)$", last)
    assert ratio is not None, last
    assert float(ratio.group(1)) > 0


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_without_a_gpu() -> None:
    run = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--tiny"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    for section in ("environment", "pytest -m gpu", "trial: classification", "trial: seq2seq"):
        assert f"===== {section}" in run.stdout
    for section in ("MFU", "throughput", "meter", "summary"):
        assert f"===== {section}" in run.stdout
    assert "failed sections: none" in run.stdout
    last = run.stdout.strip().splitlines()[-1]
    ratio = re.search(r": (\d+\.\d+)$", last)
    assert ratio is not None and float(ratio.group(1)) > 0, last


def test_every_benchmark_is_listed_in_the_readme() -> None:
    readme = (BENCH / "README.md").read_text()
    for script in sorted(BENCH.glob("*.py")):
        assert f"bench/{script.name}" in readme, script.name
