"""Trivial baselines: what a predictor that learned nothing scores on the rows a trial scores.

A constant predictor is never the answer. Each task kind has a trivial predictor that reads
nothing it should learn from:

- classification: the majority class of the labels the trial trained on (ties: the task's
  label order; no labels: its first label);
- question answering (`squad_f1`, `exact_match`): the most frequent answer among them;
- tagging and paraphrase generation: a copy of the input.

A model's margin over it is paired: both predictors are scored on the same rows, so one
bootstrap resample of the rows moves both scores (`objectives.metrics.bootstrap_interval`,
the project's vectorised percentile bootstrap over per-example statistics, so that margins
and scores share the same resamples and seed). A model *learned* when its margin's 90 %
interval lies wholly above zero and it does not give every row one prediction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives.data import Example
from objectives.metrics import ExampleStats, bootstrap_interval, metric_stats, parse_label
from objectives.tasks import CLASSIFICATION_METRICS, TaskSpec

QA_METRICS = ("squad_f1", "exact_match")
# A prediction kept in a tag (MLflow tags hold 5,000 characters; a line should stay short).
SHOWN_CHARACTERS = 80


def trivial_predictions(
    spec: TaskSpec, trained_on: Sequence[Example], examples: Sequence[Example]
) -> tuple[str, list[str]]:
    """(what the trivial predictor is, in words; its prediction for each of `examples`)."""
    if spec.kind == "classification":
        counts = Counter(e.target for e in trained_on)
        label = max(spec.labels, key=lambda name: counts[name])  # ties: the first label
        return f"majority class {label!r}", [label] * len(examples)
    if spec.metric in QA_METRICS:
        answers = Counter(e.target.strip() for e in trained_on).most_common(1)
        answer = answers[0][0] if answers else ""
        return f"most frequent answer {_shown(answer)!r}", [answer] * len(examples)
    return "copy the input", [e.source for e in examples]


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


def top_prediction(spec: TaskSpec, predictions: Sequence[str]) -> tuple[str, float]:
    """The most frequent prediction (a class by its label name) and its share of the rows."""
    if not predictions:
        return "", 0.0
    keys = [
        (parse_label(p, spec.labels) if spec.kind == "classification" else None) or p.strip()
        for p in predictions
    ]
    value, count = Counter(keys).most_common(1)[0]
    return _shown(value), count / len(keys)


@dataclass(frozen=True)
class Standing:
    """A model against the trivial predictor on the same rows: the paired margin with its
    90 % interval, and how often it gave its most frequent prediction."""

    margin: float
    margin_low: float
    margin_high: float
    top_prediction: str
    top_share: float

    @property
    def learned(self) -> bool:
        """Beats the trivial predictor beyond noise, and is no constant predictor."""
        return self.margin_low > 0 and self.top_share < 1.0


def paired_margin(model: ExampleStats, trivial: ExampleStats) -> tuple[float, float, float]:
    """(model - trivial, and its 90 % interval) with both scored on each resample of rows."""
    if model.rows.shape[0] != trivial.rows.shape[0]:
        raise ValueError(
            f"A paired margin needs both predictors on the same rows, but got "
            f"{model.rows.shape[0]} and {trivial.rows.shape[0]} rows."
        )
    width = model.rows.shape[1]

    def difference(totals: np.ndarray) -> float:
        return model.reduce(totals[:width]) - trivial.reduce(totals[width:])

    joined = ExampleStats(np.hstack([model.rows, trivial.rows]), difference)
    low, high = bootstrap_interval(joined)
    return joined.value, low, high


@dataclass(frozen=True)
class Comparison:
    """A trial's models against its trivial baseline, on the rows it scores."""

    trivial_score: float
    trivial_predictor: str
    student: Standing
    teacher: Standing | None = None

    def fields(self) -> dict[str, Any]:
        """The `TrialResult` fields this comparison fills."""
        teacher = self.teacher
        degenerate = [
            name
            for name, s in (("student", self.student), ("teacher", teacher))
            if s is not None and not s.learned
        ]
        return {
            "trivial_score": self.trivial_score,
            "trivial_predictor": self.trivial_predictor,
            "margin": self.student.margin,
            "margin_low": self.student.margin_low,
            "margin_high": self.student.margin_high,
            "top_prediction": self.student.top_prediction,
            "top_prediction_share": self.student.top_share,
            "teacher_margin": teacher.margin if teacher else None,
            "teacher_margin_low": teacher.margin_low if teacher else None,
            "teacher_margin_high": teacher.margin_high if teacher else None,
            "teacher_top_prediction": teacher.top_prediction if teacher else "",
            "teacher_top_prediction_share": teacher.top_share if teacher else None,
            "degenerate": ",".join(degenerate),
        }


def compare(
    spec: TaskSpec,
    metric: str,
    trained_on: Sequence[Example],
    examples: Sequence[Example],
    student: tuple[Sequence[str], ExampleStats],
    teacher: tuple[Sequence[str], ExampleStats] | None = None,
) -> Comparison:
    """The student (and teacher): their predictions on `examples` and the per-example
    statistics of `metric` they scored, against the trivial predictor of the labels
    `trained_on`. `metric` is the one actually computed ("ibleu" where BERT-iBLEU's
    substitute stood in: the trivial predictor is scored by the same one)."""
    described, predictions = trivial_predictions(spec, trained_on, examples)
    substitute: dict[str, Any] = {"bert_scorer": None} if metric == "ibleu" else {}
    _, trivial, _ = metric_stats(spec, predictions, examples, **substitute)

    def standing(pair: tuple[Sequence[str], ExampleStats]) -> Standing:
        margin, low, high = paired_margin(pair[1], trivial)
        return Standing(margin, low, high, *top_prediction(spec, pair[0]))

    return Comparison(
        trivial.value, described, standing(student), standing(teacher) if teacher else None
    )


# --- in words -------------------------------------------------------------------------------


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def standing_line(who: str, figures: Mapping[str, Any]) -> str:
    """One model's standing in words, from a trial's result or row (`who`: "student" or
    "teacher"), e.g. "student predicts one class: 100 % of dev rows are 'paraphrase'
    (margin over the majority class 'paraphrase': +0.0000 [+0.0000, +0.0000])"."""
    prefix = "" if who == "student" else "teacher_"
    share = figures.get(f"{prefix}top_prediction_share")
    top = figures.get(f"{prefix}top_prediction") or ""
    margin = figures.get(f"{prefix}margin")
    low, high = figures.get(f"{prefix}margin_low"), figures.get(f"{prefix}margin_high")
    if margin is None or low is None or high is None or share is None:
        return f"{who}: no trivial baseline"
    versus = (
        f"margin over the {figures.get('trivial_predictor') or 'trivial predictor'} "
        f"({float(figures.get('trivial_score') or 0.0):.4f}): "
        f"{margin:+.4f} [{low:+.4f}, {high:+.4f}]"
    )
    kind = "class" if figures.get("metric") in CLASSIFICATION_METRICS else "output"
    if share >= 1.0:
        return f"{who} predicts one {kind}: 100 % of dev rows are {top!r} ({versus})"
    if who in learned_nothing(figures.get("degenerate")):
        return (
            f"{who} does not beat its trivial baseline beyond noise ({versus}); "
            f"{_percent(share)} of dev rows are {top!r}"
        )
    return f"{who} beats its trivial baseline ({versus}); {_percent(share)} of dev rows are {top!r}"


def learned_nothing(degenerate: object) -> list[str]:
    """The models a trial's `degenerate` figure names ("student,teacher"; "" or None: none)."""
    return [who for who in str(degenerate or "").split(",") if who]


def degenerate_lines(figures: Mapping[str, Any]) -> list[str]:
    """A line for each model of a trial that learned nothing (none when both learned)."""
    return [standing_line(who, figures) for who in learned_nothing(figures.get("degenerate"))]
