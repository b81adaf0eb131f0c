"""A benchmark's result file: `bench/results/<benchmark>-<date>.json` with the command, the
commit, the machine, the setting and the raw figures, so that a figure quoted in a README can
be re-derived (and a test can check it is there)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def current_commit() -> str:
    """HEAD's short hash, "+uncommitted" when tracked files differ from it (a long benchmark
    reads it when it starts: the tree may change while it runs)."""
    run = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parent,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
        text=True, check=False, cwd=Path(__file__).resolve().parent,
    )  # fmt: skip
    return run.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def write_result_file(
    benchmark: str,
    setting: dict[str, Any],
    figures: dict[str, Any],
    folder: Path | None = None,
    commit: str | None = None,
) -> Path:
    """Write the file into `folder` (default bench/results; a second run on the same day gets
    its time in the name) and return it."""
    folder = folder or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d")
    path = folder / f"{benchmark}-{day}.json"
    if path.exists():
        path = folder / f"{benchmark}-{day}-{time.strftime('%H%M%S')}.json"
    body = {
        "benchmark": benchmark,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": commit or current_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "setting": setting,
        **figures,
    }
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    return path
