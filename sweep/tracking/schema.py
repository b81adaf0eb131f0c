"""A trial's result as a sweep records it: each field once, with how its seeds combine and
whether MLflow holds it as a metric (numbers) or a tag (text). The trainable writes through
`combine_seeds`; the store readers (`sweep.tracking.results`) read back through `read_run`."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

from objectives.trial_config import TrialResult

Combine = Literal["mean", "sum", "first", "join"]


# Tags of the MLflow layout (`mlflow_store`): what a run is and which sweep it belongs to.
TAG_KIND = "doa.kind"  # "sweep" or "trial"
TAG_SWEEP = "doa.sweep"
TAG_TASK = "doa.task"
TAG_BUDGET = "doa.budget_usd"
TAG_SEED_LABELS = "doa.n_seed_labels"
TAG_MODE = "doa.mode"  # "budget" (a fraction of a budget) or "grid" (labelled x unlabelled)
TAG_TRIAL_NUMBER = "optuna.trial_number"
TAG_FAILURE = "doa.failure"


def _measured(
    combine: Combine, default: Any = None, source: str | None = None, scale: float = 1.0
) -> Any:
    """A recorded field: how its seeds combine, which TrialResult attribute it is taken from
    (default: its own name) and by what it is multiplied (seconds -> hours)."""
    return field(default=default, metadata={"combine": combine, "source": source, "scale": scale})


def _spread(default: Any) -> Any:
    """A field over the seeds, besides the combined ones: see `combine_seeds`."""
    return field(default=default, metadata={"spread": True})


@dataclass(frozen=True, kw_only=True)
class TrialFigures:
    """A trial's result as a sweep records it, declared once: each field's seed-combining
    rule is its metadata, MLflow holds numbers as metrics and text as tags, and the row type
    read back (`sweep.tracking.results.TrialRow`) extends this class. A field older runs
    lack takes its default when read back."""

    score: float = field(metadata={"combine": "mean"})  # what the study optimises: dev
    test_score: float | None = _measured("mean")  # reported, never optimised
    teacher_score: float | None = _measured("mean")  # None: no teacher ran
    metric: str = _measured("first", "")
    strategy: str = _measured("first", "")
    teacher_status: str = _measured("first", "")
    compute_fraction: float = _measured("first", 0.0)
    n_new_labels: int = _measured("first", 0)
    n_labels_used: int = _measured("first", 0)
    n_unlabelled: float = _measured("mean", 0.0)
    # The allocation ledger: one allocation's cost, whatever the number of seeds.
    annotation_usd: float = _measured("first", 0.0)
    compute_usd: float = _measured("first", 0.0)
    compute_spent_usd: float = _measured("mean", 0.0)
    device_hours: float = _measured("mean", 0.0, source="device_seconds", scale=1 / 3600)
    practitioner_usd: float = _measured("mean", 0.0)
    # The sweep ledger: what every seed really spent.
    sweep_device_seconds: float = _measured("sum", 0.0)
    sweep_spent_usd: float = _measured("sum", 0.0)
    teacher_cache: str = _measured("join", "")
    soft_cache: str = _measured("join", "")
    # Against the task's trivial predictor on the same dev rows (`objectives.baselines`):
    # its score, each model's paired margin over it with the margin's 90 % interval (means
    # over the seeds), its most frequent prediction and that prediction's share of the rows.
    trivial_score: float | None = _measured("mean")
    trivial_predictor: str = _measured("first", "")
    margin: float | None = _measured("mean")
    margin_low: float | None = _measured("mean")
    margin_high: float | None = _measured("mean")
    top_prediction: str = _measured("first", "")
    top_prediction_share: float | None = _measured("mean")
    teacher_margin: float | None = _measured("mean")
    teacher_margin_low: float | None = _measured("mean")
    teacher_margin_high: float | None = _measured("mean")
    teacher_top_prediction: str = _measured("first", "")
    teacher_top_prediction_share: float | None = _measured("mean")
    # The models that learned nothing (did not beat the trivial predictor beyond noise, or
    # gave every row one prediction) in any seed: "student", "teacher", "student,teacher".
    # A tag; "" when both learned or no baseline was measured (stand-ins, older runs).
    degenerate: str = _measured("join", "")
    # Over the seeds: the spread, and the score's 90 % interval (dev-row bootstrap, seeds).
    score_std: float = _spread(0.0)
    score_low: float | None = _spread(None)
    score_high: float | None = _spread(None)
    n_seeds: int = _spread(1)


@dataclass(frozen=True)
class ResultField:
    """A recorded field of `TrialFigures`, as the writers and readers use it."""

    name: str
    combine: Combine
    kind: type[float] | type[int] | type[str]
    source: str | None = None
    scale: float = 1.0


def _kind(annotation: Any) -> type[float] | type[int] | type[str]:
    found = [t for t in get_args(annotation) or (annotation,) if t is not type(None)]
    return found[0]  # type: ignore[no-any-return]


_HINTS = get_type_hints(TrialFigures)
FIELDS: tuple[ResultField, ...] = tuple(
    ResultField(
        f.name,
        f.metadata["combine"],
        _kind(_HINTS[f.name]),
        f.metadata.get("source"),
        f.metadata.get("scale", 1.0),
    )
    for f in fields(TrialFigures)
    if "combine" in f.metadata
)
SPREAD = tuple(f.name for f in fields(TrialFigures) if f.metadata.get("spread"))


def _combine(field: ResultField, values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if field.combine == "first":
        return present[0]
    if field.combine == "join":  # a set of names: each seed's may be a list itself
        return ",".join(sorted({part for v in present for part in str(v).split(",") if part}))
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


def trial_spent_usd(result: Mapping[str, Any]) -> float:
    """The sweep ledger of one trial's result, or its allocation's compute for stand-ins."""
    real = float(result.get("sweep_spent_usd") or 0.0)
    return real if real > 0 else float(result.get("compute_spent_usd") or 0.0)
