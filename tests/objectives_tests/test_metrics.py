import logging
from collections.abc import Callable, Sequence

import pytest

from objectives.budget import PAPER_USD_PER_LABEL
from objectives.data import Example
from objectives.metrics import (
    _entity_stats,
    accuracy,
    bert_ibleu,
    bert_ibleu_from_parts,
    bootstrap_interval,
    entity_f1,
    entity_f1_paper,
    f1_scores,
    parse_entities,
    parse_entities_paper,
    parse_label,
    score,
    sentence_bleu,
    squad_scores,
)
from objectives.tasks import get_task

LABELS = ("a", "b", "c")
PAPER_TASKS = tuple(PAPER_USD_PER_LABEL)


def test_labels_parse_case_insensitively_and_unparsable_is_none() -> None:
    assert parse_label(" YES ", ("YES", "NO")) == "YES"
    assert parse_label("yes.", ("YES", "NO")) == "YES"
    assert parse_label("maybe", ("YES", "NO")) is None
    assert parse_label("", ("YES", "NO")) is None


def test_accuracy_counts_unparsable_as_wrong() -> None:
    assert accuracy(["a", None, "b", "b"], ["a", "a", "b", "c"]) == 0.5


def test_f1_by_hand() -> None:
    # a: tp1 fn1 fp0 -> 2/3; b: tp1 fp1 -> 2/3; c: fn1 -> 0. Macro 4/9.
    # micro: the None is a prediction of no label, so wrong: tp2, fp2, fn2 -> 4/8 = accuracy.
    scores = f1_scores(["a", None, "b", "b"], ["a", "a", "b", "c"], LABELS)
    assert scores["macro_f1"] == pytest.approx(4 / 9)
    assert scores["micro_f1"] == pytest.approx(0.5)
    # Macro averages the classes that occur (as scikit-learn's): c never does here.
    assert f1_scores(["a", "b"], ["a", "a"], LABELS)["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


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
    # Unsmoothed: no 4-gram in common is BLEU 0, as in the paper's `evaluate` BLEU.
    assert sentence_bleu("a cat was sitting", ["the cat sat"]) == 0.0


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


def test_bleu_is_sacrebleus_unsmoothed_bleu() -> None:
    # "the cat sat on the mat" vs "the cat sat on a mat": clipped n-gram precisions
    # 5/6, 3/5, 2/4, 1/3, equal lengths (BP = 1): (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 0.5373.
    value = sentence_bleu("the cat sat on the mat", ["the cat sat on a mat"])
    assert value == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert sentence_bleu("the cat sat on the mat", ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert sentence_bleu("", ["the cat"]) == 0.0


def test_bertscore_falls_back_only_when_package_or_model_is_absent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    examples = [Example("the cat sat", "a cat was sitting")]

    def raising(exc: BaseException) -> Callable[[Sequence[str], Sequence[str]], list[float]]:
        def scorer(predictions: Sequence[str], sources: Sequence[str]) -> list[float]:
            raise exc

        return scorer

    for absent in (ImportError("No module named 'bert_score'"), OSError("model not cached")):
        with caplog.at_level(logging.WARNING):
            result = bert_ibleu(["a cat was sitting"], examples, bert_scorer=raising(absent))
        assert result.name == "ibleu" and str(absent) in caplog.text
    # Anything else is a real failure: a study must not switch metrics on an OOM.
    with pytest.raises(RuntimeError, match="out of memory"):
        bert_ibleu(["x"], examples, bert_scorer=raising(RuntimeError("CUDA out of memory")))


def test_paper_tasks_default_to_the_metric_the_paper_reported() -> None:
    defaults = {name: get_task(name).metric for name in PAPER_TASKS}
    assert defaults == {
        "wlp": "entity_f1",
        "stanceosaurus": "micro_f1",
        "fever": "accuracy",
        "multipit_id": "accuracy",
        "multipit_gen": "bert_ibleu",
        "nq": "squad_f1",
    }
    # The paper's low-label Stanceosaurus figure is the majority class's share (35.2 %):
    # a model that always answers the majority class scores its share in micro F1.
    stance = get_task("stanceosaurus")
    golds = ["Irrelevant"] * 352 + ["Discussing"] * 400 + ["Refuting"] * 248
    result = score(stance, ["Irrelevant"] * 1000, [Example("c", g) for g in golds])
    assert result.name == "micro_f1" and result.value == pytest.approx(0.352)
    assert result.details["accuracy"] == result.value
    # Macro F1 is kept beside it: Irrelevant's F1 = 2 * 352 / (2 * 352 + 648) over 3 classes.
    assert result.details["macro_f1"] == pytest.approx(2 * 352 / (2 * 352 + 648) / 3)


# Three cases built from the paper's code's behaviour (`ner_parse` and `ner_postprocess` in
# its run_t5.py), each where the earlier stand-in for it disagreed.
@pytest.mark.parametrize(
    ("prediction", "gold", "paper", "standard"),
    [
        # Gold keys: "add [Action]" -> "" (one word, its only word dropped) = ACTION;
        # "5 ml [Amount]" -> "5" = AMOUNT. The empty prediction has neither key, and the
        # paper's code types a missing entity AMOUNT: "" wrong, "5" right -> 1/2.
        # Standard F1: nothing predicted, tp 0 -> 0.
        ("", "add [Action] 5 ml [Amount]", 0.5, 0.0),
        # Gold "spin down [Action] spin down [Action] ice bucket [Location]" collapses into
        # {"spin": ACTION, "ice": LOCATION} (the repeat counts once). Prediction
        # {"spin": ACTION, "ice": DEVICE}: 1 of 2 right -> 1/2.
        # Standard F1: tp 1, fp 1, fn 2 (both gold "spin down" count) -> 2/(2+1+2) = 0.4.
        (
            "spin down [Action] ice bucket [Device]",
            "spin down [Action] spin down [Action] ice bucket [Location]",
            0.5,
            0.4,
        ),
        # Tags are matched case-insensitively and only among the paper's 20 types:
        # "[TEMPERATURE]" is TEMPERATURE; "[Temp]" is no tag, so "ice [Temp]" adds nothing.
        # Gold {"37": TEMPERATURE, "": REAGENT} ("water" is one word, key "");
        # prediction {"37": TEMPERATURE}: "37" right, "" missing -> AMOUNT, wrong -> 1/2.
        # Standard F1 (case-sensitive types): tp 0 ("TEMPERATURE" != "Temperature"),
        # fp 2, fn 2 -> 0.
        ("37 °C [TEMPERATURE] ice [Temp]", "37 °C [Temperature] water [Reagent]", 0.5, 0.0),
    ],
)
def test_entity_f1_paper_reproduces_the_papers_code(
    prediction: str, gold: str, paper: float, standard: float
) -> None:
    assert entity_f1_paper([prediction], [gold])["entity_f1_paper"] == pytest.approx(paper)
    assert entity_f1([prediction], [gold])["entity_f1"] == pytest.approx(standard)


def test_paper_entity_parser_quirks() -> None:
    # The last word of every entity is dropped from its key.
    assert parse_entities_paper("add buffer [Reagent]") == {"add": "REAGENT"}
    # A tag that is the first word takes words[0:-1]: every word but the last.
    assert parse_entities_paper("[Action] mix well") == {"[Action] mix": "ACTION"}
    # Words between entities that no tag closes are folded into the next entity's span.
    assert parse_entities_paper("then add cold water [Reagent]") == {"then add cold": "REAGENT"}
    # Micro F1 over many sentences pools their gold entities: (1 + 0) / (1 + 1).
    both = entity_f1_paper(["x y [Action]", ""], ["x y [Action]", "a b [Reagent]"])
    assert both["entity_f1_paper"] == pytest.approx(0.5)
    assert entity_f1_paper(["anything [Action]"], ["no entities"])["entity_f1_paper"] == 0.0


def test_every_score_carries_a_bootstrap_interval() -> None:
    fever = get_task("fever")
    examples = [Example(f"c{i}", "SUPPORTS" if i % 3 else "REFUTES") for i in range(300)]
    predictions = ["SUPPORTS"] * 300  # right on 200 of 300
    result = score(fever, predictions, examples)
    assert result.score_low is not None and result.score_high is not None
    assert result.value == pytest.approx(2 / 3)
    assert result.score_low < result.value < result.score_high
    # A binomial's 90 % interval: about +- 1.645 * sqrt(p (1 - p) / n) = +- 0.045.
    assert result.score_high - result.score_low == pytest.approx(2 * 0.0448, abs=0.012)
    assert score(fever, predictions, examples) == result  # a fixed seed: reproducible
    perfect = score(fever, [e.target for e in examples], examples)
    assert (perfect.score_low, perfect.score_high) == (1.0, 1.0)


def test_corpus_metrics_bootstrap_by_recomputing_on_resampled_examples() -> None:
    golds = ["a b [Action]", "c d [Reagent] e f [Time]", "g h [Device]", "i j [Action]"]
    preds = ["a b [Action]", "c d [Reagent] x y [Time]", "", "i j [Action] k l [Seal]"]
    stats = _entity_stats(preds, golds)
    # The rows' sums over a resample are the corpus F1 recomputed on that resample.
    for sample in ([0, 0, 1], [2, 3, 3, 1], [1]):
        resampled = entity_f1([preds[i] for i in sample], [golds[i] for i in sample])
        assert stats.reduce(stats.rows[sample].sum(axis=0)) == pytest.approx(resampled["entity_f1"])
    low, high = bootstrap_interval(stats)
    assert low <= stats.value <= high
    wlp = score(get_task("wlp"), preds, [Example("s", g) for g in golds])
    assert wlp.name == "entity_f1" and "entity_f1_paper" in wlp.details
    assert wlp.score_low is not None and wlp.score_low <= wlp.value
