"""Task metrics on text predictions. Every function takes strings, so T5 generations and
classifier label ids (mapped to label names) are scored by the same code.

Each paper task's default metric is the one the paper reported, computed as its code did
(`../shared/docs/paper.md`); the others are reported beside it in `MetricResult.details`.
Every score carries a 90 % bootstrap interval over the scored examples (`score_low`,
`score_high`): each metric is written as per-example statistics whose column sums determine
it, so resampling examples and recomputing costs one matrix product per batch of resamples,
for means (accuracy, token F1) and corpus-level ratios (F1 over entities or classes) alike.
"""

from __future__ import annotations

import functools
import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from objectives.data import Example
from objectives.tasks import TaskSpec

logger = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
INTERVAL_MASS = 0.90
# A fixed seed: the same predictions always get the same interval (trials stay reproducible).
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class MetricResult:
    """`name` is the metric actually computed (it differs from the task's when a named
    substitute stood in); `value` is what a sweep maximises; `details` are reported too;
    [`score_low`, `score_high`] is `value`'s 90 % bootstrap interval over the examples."""

    name: str
    value: float
    details: dict[str, float] = field(default_factory=dict)
    score_low: float | None = None
    score_high: float | None = None
    # The per-example statistics `value` reduces: a paired comparison resamples them.
    stats: ExampleStats | None = field(default=None, compare=False, repr=False)


# --- per-example statistics and the bootstrap ----------------------------------------------

Reduce = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class ExampleStats:
    """A metric as `reduce(rows.sum(axis=0))`: one row of statistics per example (a mean
    keeps (value, 1); an F1 keeps (tp, fp, fn)), so a resample of examples is a resample
    of rows."""

    rows: np.ndarray  # (n_examples, n_statistics)
    reduce: Reduce

    @property
    def value(self) -> float:
        return self.reduce(self.rows.sum(axis=0))


def _mean_of(totals: np.ndarray) -> float:
    return float(totals[0] / totals[1]) if totals[1] else 0.0


def mean_stats(values: Sequence[float]) -> ExampleStats:
    """A metric that is the mean of a per-example score."""
    rows = np.column_stack([np.asarray(values, dtype=float), np.ones(len(values))])
    return ExampleStats(rows, _mean_of)


def bootstrap_interval(
    stats: ExampleStats,
    resamples: int = BOOTSTRAP_RESAMPLES,
    mass: float = INTERVAL_MASS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The percentile interval holding `mass` of the metric over `resamples` resamples of
    the examples (with replacement); (value, value) for a single example."""
    n = stats.rows.shape[0]
    if n < 2:
        return stats.value, stats.value
    rng = np.random.default_rng(seed)
    # Each resample is a vector of how often each example was drawn; a batch of them times
    # the rows gives every resample's totals at once. Batches keep memory near 8 MB.
    batch = max(1, min(resamples, 1_000_000 // n))
    values: list[float] = []
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n)
        values += [stats.reduce(totals) for totals in counts @ stats.rows]
    tail = (1.0 - mass) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# (the metric actually computed, its per-example statistics, the task's other metrics)
Scored = tuple[str, ExampleStats, dict[str, float]]


def _result(name: str, stats: ExampleStats, details: dict[str, float]) -> MetricResult:
    low, high = bootstrap_interval(stats)
    return MetricResult(name, stats.value, details, low, high, stats)


# --- classification -----------------------------------------------------------------------


def parse_label(prediction: str, labels: Sequence[str]) -> str | None:
    """Map a generated string to a label, case-insensitively; None when it names none."""
    text = prediction.strip().lower()
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    first = text.split()[0].strip(string.punctuation) if text.split() else ""
    return by_lower.get(first)


def accuracy(predictions: Sequence[str | None], golds: Sequence[str]) -> float:
    """Unparsable predictions (None) count as wrong (the paper's code mapped them to class 0,
    which made them right whenever the gold was class 0)."""
    return _classification_stats(predictions, golds, ())["accuracy"].value


def f1_scores(
    predictions: Sequence[str | None], golds: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Macro and micro F1.

    Micro F1 counts an unparsable prediction as a prediction of no label, i.e. wrong: every
    example then has one prediction and one gold, so micro F1 equals accuracy, as in the
    paper's code (scikit-learn's micro F1 over single labels). Macro F1 averages the classes
    that occur among the golds or the predictions, as scikit-learn's does.
    """
    stats = _classification_stats(predictions, golds, labels)
    return {name: stats[name].value for name in ("macro_f1", "micro_f1")}


def _classification_stats(
    predictions: Sequence[str | None], golds: Sequence[str], labels: Sequence[str]
) -> dict[str, ExampleStats]:
    _check_lengths(predictions, golds)
    correct = [float(p == g) for p, g in zip(predictions, golds, strict=True)]
    accuracy_stats = mean_stats(correct)
    classes = list(dict.fromkeys([*labels, *golds]))
    index = {c: k for k, c in enumerate(classes)}
    # Per example and class: (tp, fp, fn) in columns 3k, 3k + 1, 3k + 2.
    rows = np.zeros((len(golds), 3 * len(classes)))
    for i, (pred, gold) in enumerate(zip(predictions, golds, strict=True)):
        if pred == gold:
            rows[i, 3 * index[gold]] = 1
            continue
        rows[i, 3 * index[gold] + 2] = 1
        if pred is not None and pred in index:
            rows[i, 3 * index[pred] + 1] = 1
    return {
        "accuracy": accuracy_stats,
        "micro_f1": accuracy_stats,
        "macro_f1": ExampleStats(rows, _macro_f1),
    }


def _macro_f1(totals: np.ndarray) -> float:
    per_class = totals.reshape(-1, 3)
    present = per_class[per_class.sum(axis=1) > 0]
    if not len(present):
        return 0.0
    return float(np.mean([_f1(tp, fp, fn) for tp, fp, fn in present]))


def _f1(tp: float, fp: float, fn: float) -> float:
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def _check_lengths(predictions: Sequence[object], golds: Sequence[object]) -> None:
    if len(predictions) != len(golds) or not golds:
        raise ValueError(
            f"Need one prediction per gold example and at least one example, but got "
            f"{len(predictions)} predictions for {len(golds)} examples."
        )


# --- SQuAD-style QA -----------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, answer: str) -> float:
    """SQuAD v1.1's F1: no token in common (two empty answers included) scores 0."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(answer).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Token F1 and exact match, each the max over every accepted answer."""
    return {name: s.value for name, s in _squad_stats(predictions, answers).items()}


def _squad_stats(
    predictions: Sequence[str], answers: Sequence[Sequence[str]]
) -> dict[str, ExampleStats]:
    _check_lengths(predictions, answers)
    pairs = list(zip(predictions, answers, strict=True))
    f1 = [max(token_f1(p, a) for a in golds) for p, golds in pairs]
    em = [
        max(float(normalize_answer(p) == normalize_answer(a)) for a in golds) for p, golds in pairs
    ]
    return {"squad_f1": mean_stats(f1), "exact_match": mean_stats(em)}


# --- WLP entities ---------------------------------------------------------------------------

_ENTITY = re.compile(r"\s*(.+?)\s*\[([A-Za-z][A-Za-z\-]*)\]")


def parse_entities(text: str) -> list[tuple[str, str]]:
    """Parse `"span [Type] span [Type]"` into (span, type) pairs; text without a closing
    `[Type]` is dropped (an unparsable prediction yields no entities)."""
    return [(m.group(1), m.group(2)) for m in _ENTITY.finditer(text)]


def entity_f1(predictions: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """Standard entity-level micro F1: a predicted (span, type) counts once per gold match."""
    stats = _entity_stats(predictions, golds)
    totals = stats.rows.sum(axis=0)
    tp, fp, fn = totals
    return {
        "entity_f1": stats.value,
        "entity_precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "entity_recall": float(tp / (tp + fn)) if tp + fn else 0.0,
    }


def _entity_stats(predictions: Sequence[str], golds: Sequence[str]) -> ExampleStats:
    _check_lengths(predictions, golds)
    rows = np.zeros((len(golds), 3))
    for i, (pred, gold) in enumerate(zip(predictions, golds, strict=True)):
        p, g = Counter(parse_entities(pred)), Counter(parse_entities(gold))
        matched = sum((p & g).values())
        rows[i] = (matched, sum(p.values()) - matched, sum(g.values()) - matched)
    return ExampleStats(rows, lambda t: _f1(t[0], t[1], t[2]))


# The entity types the paper's code recognised as tags (its `label_set`); AMOUNT is its
# class 0, the type it gave every gold entity that a prediction lacked.
PAPER_WLP_TYPES = frozenset(
    {
        "AMOUNT",
        "REAGENT",
        "DEVICE",
        "TIME",
        "SPEED",
        "ACTION",
        "MENTION",
        "LOCATION",
        "NUMERICAL",
        "METHOD",
        "TEMPERATURE",
        "MODIFIER",
        "CONCENTRATION",
        "SIZE",
        "GENERIC-MEASURE",
        "SEAL",
        "MEASURE-TYPE",
        "MISC",
        "PH",
        "UNIT",
    }
)
PAPER_MISSING_ENTITY_TYPE = "AMOUNT"


def parse_entities_paper(text: str) -> dict[str, str]:
    """The paper's WLP parser (`ner_parse` in its `run_t5.py`), behaviour for behaviour:
    {entity key: TYPE}.

    - A whitespace-separated word is a tag when it holds '[' and ']' and, without its first
      and last characters, names one of `PAPER_WLP_TYPES` in any case; other words are text.
    - An entity's key is the words after the previous tag up to the word *before* the one
      preceding this tag: the last word of every entity is dropped (a bug), so every
      one-word entity gets the key "". A tag that is the text's first word takes Python's
      slice `words[0:-1]`: every word but the last.
    - Entities collapse into a dict: a repeated key counts once, with the last type.
    """
    words = text.split()
    out: dict[str, str] = {}
    after_previous_tag = 0
    for i, word in enumerate(words):
        kind = word[1:-1].upper()
        if "[" in word and "]" in word and kind in PAPER_WLP_TYPES:
            out[" ".join(words[after_previous_tag : i - 1])] = kind
            after_previous_tag = i + 1
    return out


def entity_f1_paper(predictions: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """The paper's WLP score, reproduced for comparison only.

    Each gold entity (deduplicated by key, see `parse_entities_paper`) is one classification:
    the predicted type is the prediction's type under the same key, AMOUNT where the
    prediction has no such key; spurious predicted entities are never looked at. The score
    is the micro F1 of those classifications, which for single labels is their accuracy.
    """
    return {"entity_f1_paper": _paper_entity_stats(predictions, golds).value}


def _paper_entity_stats(predictions: Sequence[str], golds: Sequence[str]) -> ExampleStats:
    _check_lengths(predictions, golds)
    rows = np.zeros((len(golds), 2))  # (gold entities typed right, gold entities)
    for i, (pred, gold) in enumerate(zip(predictions, golds, strict=True)):
        predicted = parse_entities_paper(pred.strip())
        gold_entities = parse_entities_paper(gold.strip())
        right = sum(
            predicted.get(key, PAPER_MISSING_ENTITY_TYPE) == kind
            for key, kind in gold_entities.items()
        )
        rows[i] = (right, len(gold_entities))
    return ExampleStats(rows, _mean_of)


# --- paraphrase generation ------------------------------------------------------------------


@functools.cache
def _unsmoothed_bleu() -> Any:
    from sacrebleu.metrics.bleu import BLEU  # lazily: only paraphrase generation needs it

    # Unsmoothed BLEU-4 with the 13a tokeniser, as `evaluate`'s "bleu" scored the paper.
    return BLEU(smooth_method="none", effective_order=False)


def sentence_bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Unsmoothed BLEU-4 of one sentence in [0, 1] (sacrebleu; 0 when some n-gram order has
    no match, as in the paper's `evaluate` BLEU). Scored as a one-sentence corpus, which is
    the same number without sacrebleu's sentence-level warning."""
    if not references:
        return 0.0
    score = _unsmoothed_bleu().corpus_score([hypothesis], [[r] for r in references])
    return float(score.score) / 100.0


def ibleu(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    sources: Sequence[str],
    alpha: float = 0.8,
) -> dict[str, float]:
    """iBLEU (Sun & Zhou, 2012): alpha * BLEU(pred, refs) - (1 - alpha) * BLEU(pred, source),
    per sentence, averaged."""
    return {
        name: s.value for name, s in _ibleu_stats(predictions, references, sources, alpha).items()
    }


def _ibleu_stats(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    sources: Sequence[str],
    alpha: float = 0.8,
) -> dict[str, ExampleStats]:
    _check_lengths(predictions, references)
    bleu = [sentence_bleu(p, r) for p, r in zip(predictions, references, strict=True)]
    self_bleu = [sentence_bleu(p, [s]) for p, s in zip(predictions, sources, strict=True)]
    per_example = [alpha * b - (1 - alpha) * s for b, s in zip(bleu, self_bleu, strict=True)]
    return {
        "ibleu": mean_stats(per_example),
        "bleu": mean_stats(bleu),
        "self_bleu": mean_stats(self_bleu),
    }


def bert_ibleu_from_parts(bert_score_f1: float, self_bleu: float, beta: float = 4.0) -> float:
    """((beta / BERTScore + 1 / (1 - selfBLEU)) / (beta + 1))^-1, 0 when either part is 0."""
    if bert_score_f1 <= 0 or self_bleu >= 1:
        return 0.0
    return float(1.0 / ((beta / bert_score_f1 + 1.0 / (1.0 - self_bleu)) / (beta + 1.0)))


BERTSCORE_MODEL = "microsoft/deberta-xlarge-mnli"
BertScorer = Callable[[Sequence[str], Sequence[str]], list[float]]


def _default_bert_scorer(predictions: Sequence[str], sources: Sequence[str]) -> list[float]:
    from bert_score import score  # optional extra `bertscore`; needs its model offline

    _, _, f1 = score(list(predictions), list(sources), model_type=BERTSCORE_MODEL, idf=True)
    return [float(x) for x in f1]


def bert_ibleu(
    predictions: Sequence[str],
    examples: Sequence[Example],
    beta: float = 4.0,
    bert_scorer: BertScorer | None = _default_bert_scorer,
) -> MetricResult:
    """BERT-iBLEU against the source; iBLEU against references when BERTScore is absent.

    Only an absent `bert_score` package (ImportError) or model (OSError: not cached and no
    hub), or no scorer at all, selects the substitute, returned under its own name
    ("ibleu") and logged, never silently. Any other error (out of memory, a bug) raises:
    a study must not switch to another metric's scale halfway.
    """
    return _result(*_bert_ibleu_stats(predictions, examples, beta, bert_scorer))


def _bert_ibleu_stats(
    predictions: Sequence[str],
    examples: Sequence[Example],
    beta: float = 4.0,
    bert_scorer: BertScorer | None = _default_bert_scorer,
) -> Scored:
    sources = [e.source for e in examples]
    _check_lengths(predictions, examples)
    try:
        if bert_scorer is None:
            raise ImportError("no BERTScore scorer configured")
        bert_f1 = bert_scorer(predictions, sources)
    except (ImportError, OSError) as exc:
        logger.warning(
            "BERT-iBLEU needs BERTScore with %s (%s); scoring with the substitute 'ibleu' "
            "(iBLEU against the reference paraphrases, alpha=0.8) instead.",
            BERTSCORE_MODEL,
            exc,
        )
        stats = _ibleu_stats(predictions, [e.references for e in examples], sources)
        return "ibleu", stats["ibleu"], {k: s.value for k, s in stats.items()}
    self_bleu = [sentence_bleu(p, [s]) for p, s in zip(predictions, sources, strict=True)]
    per_example = [
        bert_ibleu_from_parts(b, sb, beta) for b, sb in zip(bert_f1, self_bleu, strict=True)
    ]
    details = {
        "bert_score_f1": sum(bert_f1) / len(bert_f1),
        "self_bleu": sum(self_bleu) / len(self_bleu),
    }
    return "bert_ibleu", mean_stats(per_example), details


# --- dispatch -------------------------------------------------------------------------------


def score(task: TaskSpec, predictions: Sequence[str], examples: Sequence[Example]) -> MetricResult:
    """Score text predictions with the task's metric; `value` is the number a sweep maximises,
    with its bootstrap interval; the task's other metrics are in `details`."""
    return _result(*metric_stats(task, predictions, examples))


def metric_stats(
    task: TaskSpec,
    predictions: Sequence[str],
    examples: Sequence[Example],
    bert_scorer: BertScorer | None = _default_bert_scorer,
) -> Scored:
    """The task's metric on text predictions, as per-example statistics (no interval yet);
    `bert_scorer=None` scores BERT-iBLEU's substitute."""
    _check_lengths(predictions, examples)
    golds = [e.target for e in examples]
    if task.kind == "classification":
        parsed = [parse_label(p, task.labels) for p in predictions]
        stats = _classification_stats(parsed, golds, task.labels)
        details = {name: s.value for name, s in stats.items()}
        details["unparsable_fraction"] = sum(p is None for p in parsed) / len(parsed)
        return task.metric, stats[task.metric], details
    if task.metric in ("squad_f1", "exact_match"):
        stats = _squad_stats(predictions, [e.references for e in examples])
        return task.metric, stats[task.metric], {k: s.value for k, s in stats.items()}
    if task.metric in ("entity_f1", "entity_f1_paper"):
        details = {**entity_f1(predictions, golds), **entity_f1_paper(predictions, golds)}
        chosen = (
            _entity_stats(predictions, golds)
            if task.metric == "entity_f1"
            else _paper_entity_stats(predictions, golds)
        )
        return task.metric, chosen, details
    if task.metric == "bert_ibleu":
        return _bert_ibleu_stats(predictions, examples, bert_scorer=bert_scorer)
    raise ValueError(f"Task {task.name!r}: metric {task.metric!r} has no scorer.")
