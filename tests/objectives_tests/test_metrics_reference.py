"""Our metrics (objectives/metrics.py) against references on random and tricky inputs:
accuracy and F1 against scikit-learn, SQuAD F1 and exact match against the official SQuAD
v1.1 evaluation (reimplemented below, function for function), entity F1 against seqeval
where the two schemes agree (spans that occur once per sentence)."""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import metrics

LABELS = ("entailment", "neutral", "contradiction", "other")
PAIRS = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from(LABELS), min_size=n, max_size=n),
        st.lists(st.sampled_from(LABELS), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(PAIRS)
def test_accuracy_and_f1_agree_with_scikit_learn(pair: tuple[list[str], list[str]]) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    golds, predictions = pair
    present = sorted(set(golds) | set(predictions))
    assert metrics.accuracy(predictions, golds) == pytest.approx(accuracy_score(golds, predictions))
    ours = metrics.f1_scores(predictions, golds, LABELS)
    macro = f1_score(golds, predictions, labels=present, average="macro", zero_division=0)
    micro = f1_score(golds, predictions, average="micro", zero_division=0)
    assert ours["macro_f1"] == pytest.approx(macro)
    assert ours["micro_f1"] == pytest.approx(micro)


# --- the official SQuAD v1.1 evaluation (evaluate-v1.1.py), function for function -----------


def _official_normalize(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = _official_normalize(prediction).split()
    ground_truth_tokens = _official_normalize(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _official_em(prediction: str, ground_truth: str) -> float:
    return float(_official_normalize(prediction) == _official_normalize(ground_truth))


TRICKY = [
    ("The Eiffel Tower", "eiffel tower"),
    ("an apple, a pear", "apple pear"),
    ("the", "a"),  # both normalise to nothing
    ("", "answer"),
    ("  spaced\tout\nanswer ", "spaced out answer"),
    ("U.S.A.", "USA"),
    ("thebest", "the best"),  # an article inside a word stays
    ("Café déjà vu", "cafe deja vu"),  # accents are not folded
    ("“quoted”", '"quoted"'),  # unicode quotes are not ASCII punctuation
    ("1,000", "1000"),
    ("Theory of the Leisure Class", "theory leisure class of"),
    ("A", "an"),
]
TEXT = st.lists(st.sampled_from(["a", "b", "c", " ", "the ", "a ", "An ", ".", ",", "é", "“"])).map(
    "".join
)


@pytest.mark.parametrize(("prediction", "answer"), TRICKY)
def test_squad_scores_agree_with_the_official_v1_1_evaluation(prediction: str, answer: str) -> None:
    ours = metrics.squad_scores([prediction], [[answer]])
    assert ours["squad_f1"] == pytest.approx(_official_f1(prediction, answer))
    assert ours["exact_match"] == _official_em(prediction, answer)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.lists(TEXT, min_size=1, max_size=3))
def test_squad_scores_agree_on_random_strings(prediction: str, answers: list[str]) -> None:
    ours = metrics.squad_scores([prediction], [answers])
    assert ours["squad_f1"] == pytest.approx(max(_official_f1(prediction, a) for a in answers))
    assert ours["exact_match"] == max(_official_em(prediction, a) for a in answers)


# --- entity F1 against seqeval ---------------------------------------------------------------

TYPES = ("REAGENT", "ACTION", "DEVICE")
TAGS = st.lists(st.sampled_from(["O", *(f"{b}-{t}" for t in TYPES for b in "BI")]), max_size=12)


def _spans(tags: list[str]) -> list[tuple[str, str]]:
    """(span, type) pairs in IOB2 as seqeval reads them: an I- tag that does not continue an
    entity of its type starts one. Token i is the word `w{i}`: every span is unique."""
    spans: list[tuple[list[str], str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            spans.append(([], "O"))
            continue
        kind, typ = tag.split("-", 1)
        if kind == "I" and spans and spans[-1][1] == typ and spans[-1][0]:
            spans[-1][0].append(f"w{i}")
        else:
            spans.append(([f"w{i}"], typ))
    return [(" ".join(words), typ) for words, typ in spans if typ != "O"]


def _text(tags: list[str]) -> str:
    return " ".join(f"{span} [{typ}]" for span, typ in _spans(tags))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TAGS, TAGS), min_size=1, max_size=8))
def test_entity_f1_agrees_with_seqeval(sentences: list[tuple[list[str], list[str]]]) -> None:
    from seqeval.metrics import f1_score

    golds = [g for g, _ in sentences]
    # seqeval needs the two tag sequences of a sentence to be as long as each other.
    predictions = [(p + ["O"] * len(g))[: len(g)] for g, p in sentences]
    ours = metrics.entity_f1([_text(p) for p in predictions], [_text(g) for g in golds])
    reference = f1_score(golds, predictions, mode=None, zero_division=0)
    assert ours["entity_f1"] == pytest.approx(reference)
