"""A trial's result as a sweep records it: each field once, with how its seeds combine and
whether MLflow holds it as a metric (numbers) or a tag (text). The trainable writes through
`combine_seeds`; the store readers (`sweep.results`) read back through `read_run`."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from objectives.trial_config import TrialResult

Combine = Literal["mean", "sum", "first", "join"]


@dataclass(frozen=True)
class ResultField:
    """`name` as logged; taken from TrialResult's `source` (default: the same name), combined
    over seeds by `combine` and multiplied by `scale` (seconds -> hours)."""

    name: str
    combine: Combine
    kind: type[float] | type[int] | type[str]
    source: str | None = None
    scale: float = 1.0


FIELDS: tuple[ResultField, ...] = (
    ResultField("score", "mean", float),  # what the study optimises: dev, mean over seeds
    ResultField("test_score", "mean", float),  # reported, never optimised
    ResultField("teacher_score", "mean", float),
    ResultField("metric", "first", str),
    ResultField("strategy", "first", str),
    ResultField("teacher_status", "first", str),
    ResultField("compute_fraction", "first", float),
    ResultField("n_new_labels", "first", int),
    ResultField("n_labels_used", "first", int),
    ResultField("n_unlabelled", "mean", float),
    # The allocation ledger: one allocation's cost, whatever the number of seeds.
    ResultField("annotation_usd", "first", float),
    ResultField("compute_usd", "first", float),
    ResultField("compute_spent_usd", "mean", float),
    ResultField("device_hours", "mean", float, source="device_seconds", scale=1 / 3600),
    ResultField("practitioner_usd", "mean", float),
    # The sweep ledger: what every seed really spent.
    ResultField("sweep_device_seconds", "sum", float),
    ResultField("sweep_spent_usd", "sum", float),
    ResultField("teacher_cache", "join", str),
    ResultField("soft_cache", "join", str),
)
# Over seeds, besides the fields: the spread and the interval (see `score_interval`).
SPREAD = ("score_std", "score_low", "score_high", "n_seeds")


def _combine(field: ResultField, values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if field.combine == "first":
        return present[0]
    if field.combine == "join":
        return ",".join(sorted(set(present)))
    total = sum(present) if field.combine == "sum" else statistics.fmean(present)
    return total * field.scale


def combine_seeds(results: Sequence[TrialResult]) -> dict[str, Any]:
    """One trial's result over its seeds, field by field, plus the score's spread and
    interval (None where an objective has none)."""
    out = {f.name: _combine(f, [getattr(r, f.source or f.name) for r in results]) for f in FIELDS}
    scores = [r.score for r in results]
    low, high = score_interval(results)
    out.update(
        score_std=statistics.pstdev(scores) if len(scores) > 1 else 0.0,
        score_low=low,
        score_high=high,
        n_seeds=len(scores),
    )
    # The details (each stage's seconds, the dev set's other metrics): means over the seeds.
    for key in sorted({k for r in results for k in r.details}):
        out.setdefault(key, statistics.fmean(r.details[key] for r in results if key in r.details))
    return out


def score_interval(results: Sequence[TrialResult]) -> tuple[float | None, float | None]:
    """The mean score's interval: each seed's 90 % bootstrap interval over dev rows,
    averaged, and widened to hold every seed's score (the seeds' spread); None without
    either (one seed of an objective with no interval)."""
    bounds = [(r.score_low, r.score_high) for r in results]
    lows = [lo for lo, _ in bounds if lo is not None]
    highs = [hi for _, hi in bounds if hi is not None]
    seeds = [r.score for r in results] if len(results) > 1 else []
    if not (lows and highs) and not seeds:
        return None, None
    low = min([*seeds, *([statistics.fmean(lows)] if lows else [])])
    high = max([*seeds, *([statistics.fmean(highs)] if highs else [])])
    return low, high


def read_run(metrics: Mapping[str, float], tags: Mapping[str, str]) -> dict[str, Any]:
    """The fields back from an MLflow run: numbers from its metrics, text from its tags;
    a field the run lacks is None (runs logged before the field existed)."""
    out: dict[str, Any] = {}
    for f in FIELDS:
        raw = tags.get(f.name) if f.kind is str else metrics.get(f.name)
        out[f.name] = None if raw is None else f.kind(raw)
    out["score_std"] = float(metrics.get("score_std", 0.0))
    out["n_seeds"] = int(metrics.get("n_seeds", 1))
    for name in ("score_low", "score_high"):
        out[name] = float(metrics[name]) if name in metrics else None
    return out
