"""The trivial predictors, the paired margin over them, and a model that learned nothing named."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from objectives.baselines import (
    Comparison,
    Standing,
    compare,
    degenerate_lines,
    paired_margin,
    top_prediction,
    trivial_predictions,
)
from objectives.data import Example
from objectives.metrics import ExampleStats, mean_stats, metric_stats
from objectives.tasks import TaskSpec

PARAPHRASE = TaskSpec(
    name="mrpc", kind="classification", metric="accuracy", usd_per_label=0.2,
    labels=("different", "paraphrase"),
)  # fmt: skip
QA = TaskSpec(name="qa", kind="generation", metric="squad_f1", usd_per_label=0.1)
TAGGING = TaskSpec(name="tags", kind="generation", metric="entity_f1", usd_per_label=0.1)


def _examples(targets: list[str], sources: list[str] | None = None) -> list[Example]:
    sources = sources or [f"row {i}" for i in range(len(targets))]
    return [Example(s, t) for s, t in zip(sources, targets, strict=True)]


def test_the_trivial_classifier_predicts_the_majority_class_of_the_labels_trained_on() -> None:
    trained_on = _examples(["paraphrase"] * 7 + ["different"] * 3)
    dev = _examples(["different", "paraphrase", "different"])  # dev's own majority differs
    described, predictions = trivial_predictions(PARAPHRASE, trained_on, dev)
    assert predictions == ["paraphrase"] * 3 and described == "majority class 'paraphrase'"
    # A tie goes to the task's first label; no labels at all too.
    tie = _examples(["paraphrase", "different"])
    assert trivial_predictions(PARAPHRASE, tie, dev)[1] == ["different"] * 3
    assert trivial_predictions(PARAPHRASE, [], dev)[1] == ["different"] * 3


def test_qa_predicts_the_most_frequent_answer_and_tagging_copies_the_input() -> None:
    trained_on = _examples(["1966", "yes", "yes", "Paris"])
    dev = _examples(["no", "1966"], ["is it?", "when?"])
    assert trivial_predictions(QA, trained_on, dev) == ("most frequent answer 'yes'", ["yes"] * 2)
    assert trivial_predictions(TAGGING, trained_on, dev) == ("copy the input", ["is it?", "when?"])


def test_the_top_prediction_counts_a_class_however_it_is_written() -> None:
    predictions = ["Paraphrase", "paraphrase.", "different", "paraphrase"]
    assert top_prediction(PARAPHRASE, predictions) == ("paraphrase", 0.75)
    assert top_prediction(QA, ["a", "b"]) == ("a", 0.5)


def test_the_paired_margin_resamples_both_predictors_on_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    trivial = rng.random(300) < 0.70
    # A model right wherever the trivial one is, and on a third of the rest.
    model = trivial | (rng.random(300) < 0.33)
    margin, low, high = paired_margin(mean_stats(model), mean_stats(trivial))
    assert margin == pytest.approx(model.mean() - trivial.mean())
    assert 0 < low < margin < high
    # The percentile interval scipy's paired bootstrap gives for the same difference.
    reference = stats.bootstrap(
        (model.astype(float), trivial.astype(float)),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        paired=True,
        confidence_level=0.90,
        method="percentile",
        n_resamples=4000,
        random_state=0,
    ).confidence_interval
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=0.01)
    # The same predictor: a margin of exactly zero, however the rows are drawn.
    assert paired_margin(mean_stats(trivial), mean_stats(trivial)) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same rows"):
        paired_margin(mean_stats([1.0, 0.0]), mean_stats([1.0]))


def test_a_paired_margin_of_a_corpus_metric_is_its_difference() -> None:
    dev = _examples(["paraphrase"] * 6 + ["different"] * 4)
    model = ["paraphrase"] * 5 + ["different"] * 5  # one paraphrase missed
    f1 = TaskSpec(**{**PARAPHRASE.__dict__, "metric": "macro_f1"})
    _, model_stats, _ = metric_stats(f1, model, dev)
    _, constant, _ = metric_stats(f1, ["paraphrase"] * 10, dev)
    margin, low, high = paired_margin(model_stats, constant)
    assert margin == pytest.approx(model_stats.value - constant.value)
    assert constant.value == pytest.approx(0.375)  # macro F1 of a constant predictor at 0.6
    assert low <= margin <= high


def _standing(low: float, share: float) -> Standing:
    return Standing(low + 0.05, low, low + 0.1, "paraphrase", share)


def test_a_model_learned_only_beyond_noise_and_never_as_a_constant_predictor() -> None:
    assert _standing(0.01, 0.8).learned
    assert not _standing(-0.01, 0.8).learned  # within noise of the trivial predictor
    assert not _standing(0.02, 1.0).learned  # one prediction for every row, however lucky
    both = Comparison(0.715, "majority class 'paraphrase'", _standing(-0.1, 1.0))
    assert both.fields()["degenerate"] == "student"
    taught = Comparison(0.715, "x", _standing(0.1, 0.6), _standing(0.0, 1.0))
    assert taught.fields()["degenerate"] == "teacher"
    assert taught.fields()["teacher_top_prediction_share"] == 1.0


def test_a_trial_that_learned_nothing_is_named_in_one_line() -> None:
    dev = _examples(["paraphrase"] * 7 + ["different"] * 3)
    constant = ["paraphrase"] * 10
    _, constant_stats, _ = metric_stats(PARAPHRASE, constant, dev)
    versus = compare(PARAPHRASE, "accuracy", dev, dev, (constant, constant_stats))
    figures = {"metric": "accuracy", **versus.fields()}
    assert figures["trivial_score"] == pytest.approx(0.7) and figures["margin"] == 0.0
    [line] = degenerate_lines(figures)
    assert line.startswith("student predicts one class: 100 % of dev rows are 'paraphrase'")
    assert "majority class 'paraphrase'" in line
    # A model that learned: no line.
    right = [e.target for e in dev]
    _, right_stats, _ = metric_stats(PARAPHRASE, right, dev)
    learned = compare(PARAPHRASE, "accuracy", dev, dev, (right, right_stats)).fields()
    assert learned["degenerate"] == "" and degenerate_lines(learned) == []


def test_one_example_has_a_zero_width_margin() -> None:
    one = ExampleStats(np.array([[1.0, 1.0]]), lambda t: float(t[0] / t[1]))
    assert paired_margin(one, mean_stats([0.0])) == (1.0, 1.0, 1.0)
