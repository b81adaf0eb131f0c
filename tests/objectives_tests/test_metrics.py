import logging

import pytest

from objectives.data import Example
from objectives.metrics import (
    accuracy,
    bert_ibleu,
    bert_ibleu_from_parts,
    entity_f1,
    entity_f1_paper,
    f1_scores,
    parse_entities,
    parse_label,
    score,
    sentence_bleu,
    squad_scores,
)
from objectives.tasks import get_task

LABELS = ("a", "b", "c")


def test_labels_parse_case_insensitively_and_unparsable_is_none() -> None:
    assert parse_label(" YES ", ("YES", "NO")) == "YES"
    assert parse_label("yes.", ("YES", "NO")) == "YES"
    assert parse_label("maybe", ("YES", "NO")) is None
    assert parse_label("", ("YES", "NO")) is None


def test_accuracy_counts_unparsable_as_wrong() -> None:
    assert accuracy(["a", None, "b", "b"], ["a", "a", "b", "c"]) == 0.5


def test_f1_by_hand() -> None:
    # a: tp1 fn1 fp0 -> 2/3; b: tp1 fp1 -> 2/3; c: fn1 -> 0. Macro 4/9.
    # micro: tp2 fp1 (the None is no false positive) fn2 -> 4/7.
    scores = f1_scores(["a", None, "b", "b"], ["a", "a", "b", "c"], LABELS)
    assert scores["macro_f1"] == pytest.approx(4 / 9)
    assert scores["micro_f1"] == pytest.approx(4 / 7)


def test_squad_scores_take_the_best_answer() -> None:
    scores = squad_scores(
        ["The Eiffel tower", "paris france"], [["eiffel tower"], ["Lyon", "Paris"]]
    )
    # Second: tokens {paris, france} vs {paris}: p=1/2 r=1 -> 2/3.
    assert scores["squad_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["exact_match"] == 0.5
    assert squad_scores([""], [["x"]])["squad_f1"] == 0.0


def test_entity_parsing_and_standard_f1() -> None:
    gold = "Incubate [Action] overnight [Time] 37 °C [Temperature]"
    assert parse_entities(gold) == [
        ("Incubate", "Action"),
        ("overnight", "Time"),
        ("37 °C", "Temperature"),
    ]
    pred = "Incubate [Action] overnight [Reagent] tube [Location] garbage"
    scores = entity_f1([pred], [gold])
    # tp 1, fp 2, fn 2 -> 2/(2+2+2)
    assert scores["entity_f1"] == pytest.approx(1 / 3)
    assert entity_f1(["no brackets at all"], [gold])["entity_f1"] == 0.0


def test_paper_variant_ignores_spurious_entities_and_the_last_word() -> None:
    gold = "add buffer [Reagent] mix [Action]"
    # "add solution" shares the key "add" with "add buffer" (last word dropped);
    # "tube rack [Location]" is spurious and not penalised.
    pred = "add solution [Reagent] mix [Action] tube rack [Location]"
    assert entity_f1_paper([pred], [gold])["entity_f1_paper"] == 1.0
    assert entity_f1([pred], [gold])["entity_f1"] < 1.0
    # The same bug makes every one-word entity share the empty key: the last one wins.
    assert (
        entity_f1_paper(["mix [Action] tube [Location]"], ["mix [Action]"])["entity_f1_paper"]
        == 0.0
    )


def test_bert_ibleu_formula_and_named_substitute(caplog: pytest.LogCaptureFixture) -> None:
    assert bert_ibleu_from_parts(1.0, 0.0) == pytest.approx(1.0)
    assert bert_ibleu_from_parts(0.8, 0.5) == pytest.approx(1 / ((4 / 0.8 + 2) / 5))
    assert bert_ibleu_from_parts(0.9, 1.0) == 0.0
    examples = [Example("the cat sat", "a cat was sitting")]
    with caplog.at_level(logging.WARNING):
        result = bert_ibleu(["a cat was sitting"], examples, bert_scorer=None)
    assert result.name == "ibleu" and "substitute 'ibleu'" in caplog.text
    assert result.details["bleu"] == pytest.approx(1.0)
    real = bert_ibleu(["a cat was sitting"], examples, bert_scorer=lambda p, s: [0.8])
    assert real.name == "bert_ibleu" and real.value == pytest.approx(
        bert_ibleu_from_parts(0.8, sentence_bleu("a cat was sitting", ["the cat sat"]))
    )
    assert 0 < sentence_bleu("a cat was sitting", ["the cat sat"]) < 1


def test_score_dispatches_by_task() -> None:
    fever = get_task("fever")
    examples = [Example("c1", "SUPPORTS"), Example("c2", "REFUTES")]
    result = score(fever, ["supports", "gibberish"], examples)
    assert (result.name, result.value) == ("accuracy", 0.5)
    assert result.details["unparsable_fraction"] == 0.5
    nq = score(get_task("nq"), ["Paris"], [Example("q", "paris", ("Paris", "City of Paris"))])
    assert nq.value == 1.0
    with pytest.raises(ValueError, match="one prediction per gold example"):
        score(fever, ["SUPPORTS"], examples)
