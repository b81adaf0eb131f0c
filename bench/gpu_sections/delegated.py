"""The sections that run another program and read their figures from its output: `tests`
(pytest -m gpu) and `throughput` (bench/throughput.py against transformers.Trainer)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from . import ROOT
from .device import tiny_mode
from .figures import record


def pytest_counts(last_line: str) -> dict[str, int]:
    """{'passed': 3, 'skipped': 2, ...} from pytest's last line."""
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed)", last_line)
    return {kind.rstrip("s") if kind == "errors" else kind: int(n) for n, kind in found}


def cmd_tests(args: argparse.Namespace) -> None:
    # Tiny runs collect only the file of CUDA tests (they skip on a CPU): collecting the
    # whole suite costs a CI run ten seconds for nothing.
    where = "tests/objectives_tests/test_gpu.py" if tiny_mode(args) else "tests"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", where, "-q", "-rs"]
    command += ["-p", "no:cacheprovider"]
    print("$", " ".join(command[2:]), flush=True)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(run.stdout[-6000:] + run.stderr[-2000:])
    lines = run.stdout.strip().splitlines()
    counts = pytest_counts(lines[-1] if lines else "")
    record(args.summary, "tests", exit_code=run.returncode, **counts)
    if run.returncode not in (0, 5):  # 5: nothing selected
        raise SystemExit(run.returncode)


def cmd_throughput(args: argparse.Namespace) -> None:
    tiny = tiny_mode(args)
    command = [sys.executable, str(ROOT / "bench" / "throughput.py"), "--task", "fever"]
    if tiny:
        command += ["--tiny", "--model", "bert-offline-student", "--threads", "1"]
    else:
        # BERT-base shape on 960 claims: long enough to train, short enough for the budget.
        command += ["--model", "bert-offline-base", "--examples", "960", "--epochs", "3"]
        command += ["--lr", "1e-4", "--pseudo-examples", "256", "--trained-below", "0.9"]
    print("$", " ".join(command[1:]), flush=True)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(run.stdout + run.stderr[-3000:])

    # From the per-contender lines, which come before the script's loss checks: a run
    # whose losses disagree still reports its speeds.
    speeds = {
        (stage, name.strip()): float(rate)
        for stage, name, rate in re.findall(
            r"^  (fine-tuning|distillation) +(ours|Trainer(?: group_by_length)?) +"
            r"(\d+\.\d+) examples/s",
            run.stdout,
            flags=re.MULTILINE,
        )
    }

    def ours_over_trainer(stage: str) -> float | None:
        trainers = [v for (s, name), v in speeds.items() if s == stage and name != "ours"]
        ours = speeds.get((stage, "ours"))
        return ours / max(trainers) if ours and trainers else None

    pseudo = re.search(r"; ratio (\d+\.\d+)", run.stdout)
    record(
        args.summary,
        "throughput",
        fine_tuning=ours_over_trainer("fine-tuning"),
        distillation=ours_over_trainer("distillation"),
        pseudo_labels=float(pseudo.group(1)) if pseudo else None,
        exit_code=run.returncode,
    )
    if run.returncode:
        raise SystemExit(run.returncode)
