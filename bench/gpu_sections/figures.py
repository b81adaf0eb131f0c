"""The summary file: each section appends its key figures as one JSON object a line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def record(summary: str | None, section: str, **figures: Any) -> None:
    """Append a section's key figures to the summary file (one JSON object a line)."""
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"section": section, **figures}) + "\n")


def read_records(summary: str | None) -> list[dict[str, Any]]:
    """Every record in the summary file, in the order written (none when there is no file)."""
    if summary and Path(summary).is_file():
        return [json.loads(line) for line in Path(summary).read_text().splitlines() if line]
    return []


def fmt(value: Any, pattern: str = "{:.2f}") -> str:
    """A figure as printed: `n/a` when a section did not measure it."""
    return "n/a" if value is None else pattern.format(value)
