"""Every benchmark still runs, in its tiny mode, and ends with its ratio (never timed here:
the figures themselves are recorded in bench/README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "orchestration.py",
        "search_efficiency.py",
        "stage_cache.py",
        # throughput.py --tiny runs inside the GPU check's tiny run (the test below).
        "scaling.py",
        "cost_model.py",
        "paper_table.py",
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
    # The paper table's figure is the share of cells distillation won: 0 is an outcome.
    assert float(ratio.group(1)) > 0 or script == "paper_table.py", last


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
    # Its throughput section ran bench/throughput.py --tiny, whose speeds it read.
    figures = re.search(
        r"throughput ours / Trainer: fine-tuning (\S+), distillation (\S+);", run.stdout
    )
    assert figures is not None and "n/a" not in figures.groups(), run.stdout[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    ratio = re.search(r": (\d+\.\d+)$", last)
    assert ratio is not None and float(ratio.group(1)) > 0, last


def test_every_benchmark_is_listed_in_the_readme() -> None:
    readme = (BENCH / "README.md").read_text()
    for script in sorted(BENCH.glob("*.py")):
        assert f"bench/{script.name}" in readme, script.name


DECISION = re.compile(
    r"^decision cost: ours (\d+\.\d) %( \(missed: not within a point\))? of the budget "
    r"\(grid (\d+\.\d %|> \d+ trials), plain TPE (\d+\.\d %|> \d+ trials), "
    r"default sweep (\d+\.\d %|> \d+ trials)\)$"
)


def _decision_cost(*args: str) -> tuple[re.Match[str], str]:
    run = subprocess.run(
        [sys.executable, str(BENCH / "decision_cost.py"), "--tiny", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    match = DECISION.match(run.stdout.strip().splitlines()[-1])
    assert match is not None, run.stdout
    return match, run.stdout


def test_the_decision_cost_benchmark_prints_its_line_last() -> None:
    match, out = _decision_cost()
    assert 0 < float(match.group(1)) <= 100
    assert re.search(r"^default sweep steered by the curve: \d+\.\d %", out, re.MULTILINE), out


def test_the_curve_steers_the_default_sweep_once_it_fits(tmp_path: Path) -> None:
    # A made-up task whose student gains toward a teacher exponentially in U (the shape the
    # learning curve cannot take): the default sweep needs 6 full-size trials there, so a
    # warm start's shape (5 trials) lets the curve choose some.
    rng = np.random.default_rng(3)
    path = tmp_path / "capped.csv"
    lines = ["labels,unlabelled,compute_usd,score"]
    for n_labels in (100, 200, 400, 800, 1600, 3200):
        for n_unlabelled in (0, 1000, 5000, 20000, 100000):
            cost = 1 + 4.29 * n_labels / 1000 + 0.78 * n_unlabelled / 1000 if n_unlabelled else 0
            student = 0.5 + 0.3 * (1 - np.exp(-n_labels / 800))
            teacher = 0.6 + 0.3 * (1 - np.exp(-n_labels / 400))
            score = teacher - (teacher - student) * np.exp(-n_unlabelled / 5000)
            lines.append(f"{n_labels},{n_unlabelled},{cost:.3f},{score + rng.normal(0, 0.003):.4f}")
    path.write_text("\n".join(lines) + "\n")
    args = ("--replay-table", str(path), "--task", "fever", "--budget", "300")
    _, out = _decision_cost(*args, "--seed-labels", "100", "--warm-start-table", str(path))
    steered = re.search(r"^default sweep steered by the curve: (.*)$", out, re.MULTILINE)
    assert steered is not None, out
    assert sum(int(n) for n in re.findall(r"\((\d+) steered\)", steered.group(1))) > 0, out


def test_the_decision_cost_benchmark_takes_a_table_it_has_never_seen(tmp_path: Path) -> None:
    # A made-up task: scores rise in log L and log U, distillation costs $2 per 1K examples.
    rng = np.random.default_rng(7)
    path = tmp_path / "unseen.csv"
    lines = ["labels,unlabelled,compute_usd,score"]
    for n_labels in (50, 200, 800, 3200):
        for n_unlabelled in (0, 2000, 20000):
            cost = 1 + 3 * n_labels / 1000 + 2 * n_unlabelled / 1000 if n_unlabelled else 0
            score = 0.4 + 0.04 * np.log(n_labels) + 0.02 * np.log1p(n_unlabelled)
            lines.append(f"{n_labels},{n_unlabelled},{cost},{score + rng.normal(0, 0.003):.4f}")
    path.write_text("\n".join(lines) + "\n")
    args = ("--replay-table", str(path), "--task", "fever", "--budget", "100")
    match, _ = _decision_cost(*args, "--seed-labels", "50", "--usd-per-label", "0.2")
    assert float(match.group(1)) <= 100
    # A warm start from the bundled table: its shape, five pilots in the first round.
    bundled = ("--warm-start-table", str(BENCH / "data" / "fever_synthetic_grid.csv"))
    match, out = _decision_cost(*args, "--seed-labels", "50", "--usd-per-label", "0.2", *bundled)
    assert "warm start: fever's 42 points" in out and "round 1: 5 pilots" in out
    assert float(match.group(1)) <= 100
