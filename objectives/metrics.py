"""Task metrics on text predictions. Every function takes strings, so T5 generations and
classifier label ids (mapped to label names) are scored by the same code."""

from __future__ import annotations

import logging
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from objectives.data import Example
from objectives.tasks import TaskSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricResult:
    """`name` is the metric actually computed (it differs from the task's when a named
    substitute stood in); `value` is what a sweep maximises; `details` are reported too."""

    name: str
    value: float
    details: dict[str, float] = field(default_factory=dict)


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
    """Unparsable predictions (None) count as wrong, not as class 0 as in the paper's code."""
    _check_lengths(predictions, golds)
    return sum(p == g for p, g in zip(predictions, golds, strict=True)) / len(golds)


def f1_scores(
    predictions: Sequence[str | None], golds: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Macro and micro F1. An unparsable prediction is a miss for its gold class and a false
    positive for no class, so micro F1 exceeds accuracy only when some predictions are None."""
    _check_lengths(predictions, golds)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for pred, gold in zip(predictions, golds, strict=True):
        if pred == gold:
            tp[gold] += 1
            continue
        fn[gold] += 1
        if pred is not None:
            fp[pred] += 1
    per_class = [_f1(tp[c], fp[c], fn[c]) for c in labels]
    return {
        "macro_f1": sum(per_class) / len(per_class),
        "micro_f1": _f1(sum(tp.values()), sum(fp.values()), sum(fn.values())),
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


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
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(answer).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Token F1 and exact match, each the max over every accepted answer."""
    _check_lengths(predictions, answers)
    f1 = [max(token_f1(p, a) for a in golds) for p, golds in zip(predictions, answers, strict=True)]
    em = [
        max(float(normalize_answer(p) == normalize_answer(a)) for a in golds)
        for p, golds in zip(predictions, answers, strict=True)
    ]
    return {"squad_f1": sum(f1) / len(f1), "exact_match": sum(em) / len(em)}


# --- WLP entities ---------------------------------------------------------------------------

_ENTITY = re.compile(r"\s*(.+?)\s*\[([A-Za-z][A-Za-z\-]*)\]")


def parse_entities(text: str) -> list[tuple[str, str]]:
    """Parse `"span [Type] span [Type]"` into (span, type) pairs; text without a closing
    `[Type]` is dropped (an unparsable prediction yields no entities)."""
    return [(m.group(1), m.group(2)) for m in _ENTITY.finditer(text)]


def entity_f1(predictions: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """Standard entity-level micro F1: a predicted (span, type) counts once per gold match."""
    _check_lengths(predictions, golds)
    tp = fp = fn = 0
    for pred, gold in zip(predictions, golds, strict=True):
        p, g = Counter(parse_entities(pred)), Counter(parse_entities(gold))
        matched = sum((p & g).values())
        tp += matched
        fp += sum(p.values()) - matched
        fn += sum(g.values()) - matched
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"entity_f1": _f1(tp, fp, fn), "entity_precision": precision, "entity_recall": recall}


def entity_f1_paper(predictions: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """The paper's WLP scoring, reproduced for comparison only.

    Its code keyed entities by span with the last word dropped (a bug), looked predictions
    up only for gold keys, and so never penalised spurious predicted entities.
    """
    _check_lengths(predictions, golds)

    def key(span: str) -> str:
        return " ".join(span.split()[:-1])

    tp = fp = fn = 0
    for pred, gold in zip(predictions, golds, strict=True):
        predicted = {key(span): kind for span, kind in parse_entities(pred)}
        for span, kind in parse_entities(gold):
            found = predicted.get(key(span))
            if found == kind:
                tp += 1
            else:
                fn += 1
                fp += found is not None
    return {"entity_f1_paper": _f1(tp, fp, fn)}


# --- paraphrase generation ------------------------------------------------------------------


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(hypothesis: str, references: Sequence[str], max_n: int = 4) -> float:
    """BLEU-4 of one sentence with add-one smoothing of higher orders (Lin & Och, 2004),
    whitespace tokens, lower case; 0.0 for an empty hypothesis."""
    hyp = hypothesis.lower().split()
    refs = [r.lower().split() for r in references]
    if not hyp or not refs:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        counts = _ngrams(hyp, n)
        max_ref: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            max_ref |= _ngrams(ref, n)
        matched = sum((counts & max_ref).values())
        total = sum(counts.values())
        if n == 1:
            if matched == 0:
                return 0.0
            log_precision += math.log(matched / total)
        else:
            log_precision += math.log((matched + 1) / (total + 1))
    closest = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return brevity * math.exp(log_precision / max_n)


def ibleu(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    sources: Sequence[str],
    alpha: float = 0.8,
) -> dict[str, float]:
    """iBLEU (Sun & Zhou, 2012): alpha * BLEU(pred, refs) - (1 - alpha) * BLEU(pred, source)."""
    _check_lengths(predictions, references)
    bleu = [sentence_bleu(p, r) for p, r in zip(predictions, references, strict=True)]
    self_bleu = [sentence_bleu(p, [s]) for p, s in zip(predictions, sources, strict=True)]
    n = len(predictions)
    return {
        "ibleu": alpha * sum(bleu) / n - (1 - alpha) * sum(self_bleu) / n,
        "bleu": sum(bleu) / n,
        "self_bleu": sum(self_bleu) / n,
    }


def bert_ibleu_from_parts(bert_score_f1: float, self_bleu: float, beta: float = 4.0) -> float:
    """((beta / BERTScore + 1 / (1 - selfBLEU)) / (beta + 1))^-1, 0 when either part is 0."""
    if bert_score_f1 <= 0 or self_bleu >= 1:
        return 0.0
    return float(1.0 / ((beta / bert_score_f1 + 1.0 / (1.0 - self_bleu)) / (beta + 1.0)))


BERTSCORE_MODEL = "microsoft/deberta-xlarge-mnli"
BertScorer = Callable[[Sequence[str], Sequence[str]], list[float]]


def _default_bert_scorer(predictions: Sequence[str], sources: Sequence[str]) -> list[float]:
    from bert_score import score  # optional; needs the model offline or a reachable hub

    _, _, f1 = score(list(predictions), list(sources), model_type=BERTSCORE_MODEL, idf=True)
    return [float(x) for x in f1]


def bert_ibleu(
    predictions: Sequence[str],
    examples: Sequence[Example],
    beta: float = 4.0,
    bert_scorer: BertScorer | None = _default_bert_scorer,
) -> MetricResult:
    """BERT-iBLEU against the source; iBLEU against references when BERTScore is unavailable.

    The substitute is returned under its own name ("ibleu") and logged, never silently.
    """
    sources = [e.source for e in examples]
    try:
        if bert_scorer is None:
            raise RuntimeError("no BERTScore scorer configured")
        bert_f1 = bert_scorer(predictions, sources)
    except Exception as exc:  # ImportError, or the model cannot be loaded offline
        logger.warning(
            "BERT-iBLEU needs BERTScore with %s (%s); scoring with the substitute 'ibleu' "
            "(iBLEU against the reference paraphrases, alpha=0.8) instead.",
            BERTSCORE_MODEL,
            exc,
        )
        scores = ibleu(predictions, [e.references for e in examples], sources)
        return MetricResult("ibleu", scores["ibleu"], scores)
    per_example = [
        bert_ibleu_from_parts(b, sentence_bleu(p, [s]), beta)
        for b, p, s in zip(bert_f1, predictions, sources, strict=True)
    ]
    value = sum(per_example) / len(per_example)
    return MetricResult("bert_ibleu", value, {"bert_score_f1": sum(bert_f1) / len(bert_f1)})


# --- dispatch -------------------------------------------------------------------------------


def score(task: TaskSpec, predictions: Sequence[str], examples: Sequence[Example]) -> MetricResult:
    """Score text predictions with the task's metric; `value` is the number a sweep maximises."""
    _check_lengths(predictions, examples)
    golds = [e.target for e in examples]
    if task.kind == "classification":
        parsed = [parse_label(p, task.labels) for p in predictions]
        details = {"accuracy": accuracy(parsed, golds), **f1_scores(parsed, golds, task.labels)}
        details["unparsable_fraction"] = sum(p is None for p in parsed) / len(parsed)
        return MetricResult(task.metric, details[task.metric], details)
    if task.metric in ("squad_f1", "exact_match"):
        details = squad_scores(predictions, [e.references for e in examples])
        return MetricResult(task.metric, details[task.metric], details)
    if task.metric in ("entity_f1", "entity_f1_paper"):
        details = {**entity_f1(predictions, golds), **entity_f1_paper(predictions, golds)}
        return MetricResult(task.metric, details[task.metric], details)
    if task.metric == "bert_ibleu":
        return bert_ibleu(predictions, examples)
    raise ValueError(f"Task {task.name!r}: metric {task.metric!r} has no scorer.")
