"""Every benchmark still runs, in its tiny mode, and ends with its ratio (never timed here:
the figures themselves are recorded in bench/README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


SCRIPTS = (
    "orchestration.py",
    "search_efficiency.py",
    "stage_cache.py",
    # throughput.py --tiny runs inside the GPU check's tiny run (below).
    "scaling.py",
    "cost_model.py",
    "paper_table.py",
    "pareto_share.py",
    "reference_landscape.py",
)


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.slow
def test_every_benchmark_runs_and_prints_its_ratio_last(tmp_path: Path) -> None:
    # Three at a time: most of each is process and Ray start-up, which overlaps well on two
    # cores (one after another they took 167 s of the suite's 15 minutes).
    from concurrent.futures import ThreadPoolExecutor

    commands = {s: [sys.executable, str(BENCH / s), "--tiny"] for s in SCRIPTS}
    for script in (
        "paper_table.py",
        "pareto_share.py",
        "search_efficiency.py",
        "reference_landscape.py",
    ):
        commands[script] += ["--results", str(tmp_path)]
    commands["gpu_check.sh"] = ["bash", str(BENCH / "gpu_check.sh"), "--tiny"]
    env = {**os.environ, "PYTHON": sys.executable}
    with ThreadPoolExecutor(max_workers=3) as pool:
        # The GPU check, the longest, first.
        order = sorted(commands, key=lambda s: s != "gpu_check.sh")
        runs = dict(zip(order, pool.map(lambda s: _run(commands[s], env), order), strict=True))
    for script in SCRIPTS:
        run = runs[script]
        assert run.returncode == 0, script + run.stdout + run.stderr
        last = run.stdout.strip().splitlines()[-1]
        if script in LAST_LINES:
            assert LAST_LINES[script].match(last), last
            continue
        ratio = re.search(r": (\d+\.\d+)$", last)
        assert ratio is not None, (script, last)
        # The paper table's figure is the share of cells distillation won, the Pareto share's
        # a compute share: 0 is an outcome for both.
        outcome = script in ("paper_table.py", "pareto_share.py")
        assert float(ratio.group(1)) > 0 or outcome, (script, last)
    _check_the_gpu_check(runs["gpu_check.sh"])
    _check_the_paper_tables_result_file(tmp_path)
    _check_the_pareto_shares_result_file(tmp_path)


def _check_the_pareto_shares_result_file(folder: Path) -> None:
    """The tiny 2 x 2 grid: every point read back, the cheapest on the front."""
    import json

    (path,) = folder.glob("pareto_share-tiny-*.json")
    (grid,) = json.loads(path.read_text())["grids"]
    points = grid["points"]
    assert len(points) == 4 and len({p["run_id"] for p in points}) == 4
    cheapest = min(points, key=lambda p: p["total_usd"])
    assert cheapest["on_front"] and cheapest["compute_share"] == 0.0
    assert all(0 <= p["compute_share"] < 1 for p in points)


def _check_the_paper_tables_result_file(folder: Path) -> None:
    """Every cell ran its own trials: both arms at every seed, no run reported twice."""
    import json

    (path,) = folder.glob("paper_table-tiny-*.json")
    body = json.loads(path.read_text())
    seeds, run_ids = body["setting"]["seeds"], []
    for cell in body["cells"]:
        assert {t["cell"] for t in cell["trials"]} == {cell["name"]}
        by_share: dict[float, list[int]] = {}
        for trial in cell["trials"]:
            by_share.setdefault(trial["compute_fraction"], []).append(trial["seed"])
        assert all(sorted(s) == list(range(seeds)) for s in by_share.values()), by_share
        assert 0.0 in by_share and len(by_share) == 1 + len(cell["candidates"])
        run_ids += [t["run_id"] for t in cell["trials"]]
    assert len(run_ids) == len(set(run_ids)) and len(body["cells"]) == 2
    assert body["table"][2:] == [line for line in body["table"] if line.startswith("| fever")]


def _check_the_gpu_check(run: subprocess.CompletedProcess[str]) -> None:
    """Without a GPU the check still runs every section, in its CPU-sized form."""
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


SEARCH = re.compile(
    r"^search suite: ours regret after 1, 3 trials: \d+\.\d\d, \d+\.\d\d points \(today's "
    r"default search: \d+\.\d\d, \d+\.\d\d; plain TPE: \d+\.\d\d, \d+\.\d\d; random: "
    r"\d+\.\d\d, \d+\.\d\d; grid order: \d+\.\d\d, \d+\.\d\d; prior alone: \d+\.\d\d\)$"
)
REFERENCE = re.compile(
    r"^reference: over 1 tasks, ours after 3 trials regret \d+\.\d\d points \(prior alone "
    r"\d+\.\d\d; old default search \d+\.\d\d; the reference's noise \d+\.\d\d points\)$"
)
LAST_LINES = {"search_efficiency.py": SEARCH, "reference_landscape.py": REFERENCE}
DECISION = re.compile(
    r"^decision cost: ours (\d+\.\d) %( \(missed: not within a point\))? of the budget "
    r"\(regret: fixed share f=\d\.\d chosen on the other landscapes (\d+\.\d\d), prior alone "
    r"(\d+\.\d\d), random (\d+\.\d\d) points\)$"
)
SUITE = re.compile(
    r"^decision suite: ours within a point in (\d+) of (\d+) cells, mean regret (\d+\.\d\d) "
    r"points, mean spend (\d+\.\d) % of B \(best fixed share: f=\d\.\d \d+\.\d\d chosen on "
    r"these cells, (\d+\.\d\d) chosen leave-one-out; prior alone: (\d+\.\d\d)\)$"
)


def _decision_cost(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, str(BENCH / "decision_cost.py"), "--no-write", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _made_up(path: Path, slope_labels: float, slope_pool: float) -> Path:
    """A grid whose scores rise in log L and log U at the given slopes, priced like FEVER."""
    rng = np.random.default_rng(7)
    lines = ["labels,unlabelled,compute_usd,score"]
    for n in (100, 500, 1000, 5000, 10000):
        for u in (0, 10000, 100000):
            cost = 3 + 4.29 * n / 1000 + 0.78 * u / 1000 if u else 0
            score = 0.3 + slope_labels * np.log10(n) + slope_pool * np.log10(1 + u)
            lines.append(f"{n},{u},{cost:.3f},{score + rng.normal(0, 0.002):.4f}")
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text('{"task": "fever"}')
    return path


def test_the_decision_benchmark_prints_regret_null_baselines_and_its_line(tmp_path: Path) -> None:
    table = _made_up(tmp_path / "unseen.csv", 0.05, 0.02)
    out = _decision_cost("--replay-table", str(table), "--budget", "300", "--seed-labels", "100")
    match = DECISION.match(out.strip().splitlines()[-1])
    assert match is not None, out
    assert re.search(r"^ours: regret \d+\.\d\d points$", out, re.MULTILINE), out
    assert re.search(r"flat +\d+ % \| ours .* \| fixed best f=\d\.\d .* median", out), out
    # What the plan printed, in order: the prior's answer, then the answer and its price.
    assert out.index("prior (landscapes") < out.index("answer: spend") < out.index("spent deciding")


def test_the_decision_suite_scores_every_grid_at_every_setting(tmp_path: Path) -> None:
    _made_up(tmp_path / "labels_matter.csv", 0.08, 0.005)
    _made_up(tmp_path / "pool_matters.csv", 0.01, 0.04)
    out = _decision_cost("--suite", str(tmp_path), "--noise", "0.005", "--seeds", "2")
    match = SUITE.match(out.strip().splitlines()[-1])
    assert match is not None, out
    assert match.group(2) == "6"  # 2 grids x 3 budgets at 100 seed labels
    assert len(re.findall(r"^(labels_matter|pool_matters) +B=", out, re.MULTILINE)) == 12
    assert re.search(r"ours \d+\.\d\d ±\d+\.\d\d pt", out), out  # noise: spread over seeds
    assert "ours minus it: 90 % paired interval" in out
    assert re.search(
        r"^calibration: printed expected regret \d+\.\d\d vs realized \d+\.\d\d points; the 90 % "
        r"share range holds the best share in \d+ of 24 cells \(mean width \d\.\d\d\); the answer "
        r"inside its range in 24 of 24$",
        out,
        re.MULTILINE,
    ), out


def test_a_result_file_names_its_command_commit_and_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    sys.path.insert(0, str(BENCH.parent))
    from bench import results_file

    monkeypatch.setattr(results_file, "RESULTS", tmp_path)
    first = results_file.write_result_file("demo", {"budget": 1}, {"cells": [1, 2]})
    second = results_file.write_result_file("demo", {"budget": 1}, {"cells": [3]})
    assert first != second  # a second run the same day keeps the first
    body = json.loads(first.read_text())
    assert {"command", "commit", "date", "machine", "setting", "cells"} <= body.keys()
    assert body["cells"] == [1, 2] and body["commit"]


def _stats(correct: list[int]) -> Any:
    from objectives.metrics import mean_stats

    return mean_stats([float(c) for c in correct])


def test_the_paired_difference_counts_the_seeds_and_the_rows() -> None:
    sys.path.insert(0, str(BENCH.parent))
    from bench.paper_table import paired_difference

    rng = np.random.default_rng(3)
    rows = 400
    annotate = [_stats(list(rng.random(rows) < 0.6)) for _ in range(3)]
    # The same trials against themselves: no difference, and no width.
    assert paired_difference(annotate, annotate) == (0.0, 0.0, 0.0)
    # Each distillation seed right on every row its annotate seed got, and on 10 % more.
    better = [_stats([int(c or rng.random() < 0.25) for c in a.rows[:, 0]]) for a in annotate]
    point, low, high = paired_difference(annotate, better)
    assert 0 < low < point < high
    # One seed far off widens the interval: the seeds' spread counts.
    mixed = [better[0], better[1], annotate[2]]
    assert paired_difference(annotate, mixed)[1] < low
    with pytest.raises(ValueError, match="same rows"):
        paired_difference(annotate, [_stats([1] * 10)] * 3)
    with pytest.raises(ValueError, match="one annotate-only trial per distillation trial"):
        paired_difference(annotate, better[:2])


def test_the_paired_interval_holds_a_zero_difference_nine_times_in_ten() -> None:
    """Three seeds whose luck moves a score by about five points, 1,000 test rows, no true
    difference: the 90 % interval must hold zero at least about 90 % of the time. (Measured
    with this seed: 0.96; a percentile bootstrap over the seeds and rows held it 0.76.)"""
    sys.path.insert(0, str(BENCH.parent))
    from bench.paper_table import paired_difference

    rng = np.random.default_rng(11)
    held, runs, rows = 0, 100, 1000
    for run in range(runs):
        arms = [
            [_stats(list(rng.random(rows) < 0.6 + rng.normal(0, 0.05))) for _ in range(3)]
            for _ in range(2)
        ]
        _, low, high = paired_difference(arms[0], arms[1], resamples=200, seed=run)
        held += low <= 0 <= high
    assert held / runs >= 0.86, held / runs


def _newest_result(benchmark: str) -> dict[str, Any]:
    """The newest full run's result file (tiny runs are CI's, never quoted)."""
    import json

    files = [p for p in (BENCH / "results").glob(f"{benchmark}-*.json") if "-tiny-" not in p.name]
    assert files, f"no result file of {benchmark} in bench/results"
    newest = max(files, key=lambda p: json.loads(p.read_text())["date"])
    return dict(json.loads(newest.read_text()))


def test_the_readmes_comparison_figures_come_from_the_newest_result_files() -> None:
    """Every row of the paper comparison in README.md and bench/README.md is a row that the
    newest bench/paper_table.py run printed into its result file, and bench/README.md quotes
    the last lines of that run and of bench/pareto_share.py's newest run."""
    table = _newest_result("paper_table")
    for readme in (BENCH.parent / "README.md", BENCH / "README.md"):
        rows = [
            line.strip()
            for line in readme.read_text().splitlines()
            if line.strip().startswith(("| fever |", "| multipit_id |", "| bbc_news |"))
        ]
        shown = readme.relative_to(BENCH.parent)
        assert rows, f"{shown}: no paper comparison rows"
        missing = [row for row in rows if row not in table["table"]]
        assert not missing, f"{shown}: rows not in the newest result file: {missing}"
    quoted = " ".join((BENCH / "README.md").read_text().split())
    for benchmark in ("paper_table", "pareto_share"):
        summary = _newest_result(benchmark)["summary"]
        assert summary in quoted, f"bench/README.md does not quote {benchmark}: {summary}"


def test_the_readmes_search_and_reference_tables_come_from_the_result_files_it_names() -> None:
    """README.md's regret-by-trials table and its reference table are rows of the result files
    it names, and it quotes each run's last line (docs/decision.md the search's table too)."""
    import json

    readme = (BENCH.parent / "README.md").read_text()
    quoted = " ".join(readme.split())
    for benchmark in ("search_efficiency", "reference_landscape"):
        names = set(re.findall(rf"bench/results/({benchmark}-[0-9-]+\.json)", readme))
        assert len(names) == 1, f"README.md names {len(names)} {benchmark} result files"
        result = json.loads((BENCH / "results" / names.pop()).read_text())
        rows = [r for r in result["table"] if r.startswith("| ") and not r.startswith("| search")]
        for row in rows:
            assert row in readme.splitlines(), f"README.md lacks the {benchmark} row {row}"
        last = result["summary"][-1] if isinstance(result["summary"], list) else result["summary"]
        assert last in quoted, f"README.md does not quote {benchmark}'s last line: {last}"
        if benchmark == "search_efficiency":
            decision = (BENCH.parent / "docs" / "decision.md").read_text().splitlines()
            assert all(row in decision for row in rows), "docs/decision.md lacks the table"
