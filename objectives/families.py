"""The two model families behind one small interface.

A family turns examples into token ids, batches them, and knows its losses: cross-entropy
on gold targets, and the distillation loss `KL(student/T || teacher/T) * T^2` against soft
targets that the teacher produced once (cached, so later epochs and later trials reuse them).

- `EncoderFamily`: sequence classification; soft targets are the teacher's class logits.
- `Seq2SeqFamily`: T5 text-to-text, as in the paper; the teacher greedily generates a
  pseudo-target, then is run teacher-forced on it, and its top-k logits per position are
  kept. The paper re-ran the teacher every epoch; keeping the top-k (k=16 by default) of a
  single pass gives the same loss up to the mass outside the top-k and costs one pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from objectives.data import Example
from objectives.tasks import TYPE_TAG, TaskSpec


@dataclass
class Item:
    """One tokenised example. `label` for classifiers (-1 when unlabelled), `target_ids` for
    seq2seq (empty when unlabelled)."""

    input_ids: list[int]
    label: int = -1
    target_ids: tuple[int, ...] = ()

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids) + len(self.target_ids)


@dataclass
class Soft:
    """A teacher's soft target for one item: class logits, or per-position top-k logits of a
    generated pseudo-target."""

    logits: torch.Tensor
    indices: torch.Tensor | None = None
    target_ids: tuple[int, ...] = ()


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on GPUs that support it; fp32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _cached_ids(
    cache: dict[str, list[int]], tokenizer: Any, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids by text, each text tokenised once: a family's vocabulary pass tokenises
    every split, and the trial's encodes (labelled set, pool, each dev report) reuse it."""
    new = list(dict.fromkeys(t for t in texts if t not in cache))
    if new:
        ids = tokenizer(new, truncation=True, max_length=max_length)
        cache.update(zip(new, ids["input_ids"], strict=True))
    return [cache[t] for t in texts]


def _vocabulary(
    tokenizer: Any, rows: Sequence[Sequence[int]]
) -> tuple[tuple[int, ...], dict[int, int]]:
    """The ids `rows` use and the tokenizer's specials, sorted; and each one's new id."""
    used = set(tokenizer.all_special_ids)
    for row in rows:
        used.update(row)
    kept = tuple(sorted(used))
    return kept, {old: new for new, old in enumerate(kept)}


def _renumbered(
    rows: Sequence[Sequence[int]], renumber: dict[int, int], tokenizer: Any
) -> list[list[int]]:
    """`rows` in the kept ids (unknown: [UNK]'s); copies as they are without a vocabulary."""
    if not renumber:
        return [list(row) for row in rows]
    unk = renumber[int(tokenizer.unk_token_id)]
    return [[renumber.get(i, unk) for i in row] for row in rows]


def _kept_rows(embedding: Any, rows: torch.Tensor, pad_id: int | None) -> torch.nn.Embedding:
    """`embedding` with only `rows` (renumbered 0..n-1; `pad_id` already renumbered)."""
    trimmed = torch.nn.Embedding(len(rows), embedding.embedding_dim, padding_idx=pad_id).to(
        embedding.weight.device, embedding.weight.dtype
    )
    with torch.no_grad():
        trimmed.weight.copy_(embedding.weight.index_select(0, rows.to(embedding.weight.device)))
    return trimmed


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, averaged over rows."""
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, dim=-1),
            F.log_softmax(teacher_logits / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


class Family(Protocol):
    name: str
    pad_id: int

    def encode(self, examples: Sequence[Example], with_targets: bool) -> list[Item]: ...

    def trim(self, model: Any) -> Any: ...

    def loss(self, model: Any, items: Sequence[Item], device: torch.device) -> torch.Tensor: ...

    def distill_loss(
        self,
        student: Any,
        items: Sequence[Item],
        softs: Sequence[Soft],
        temperature: float,
        device: torch.device,
    ) -> torch.Tensor: ...

    def predict(self, model: Any, items: Sequence[Item], device: torch.device) -> list[str]: ...

    def finish(self, predictions: list[str], examples: Sequence[Example]) -> list[str]: ...

    def soft_targets(
        self, teacher: Any, items: Sequence[Item], device: torch.device
    ) -> list[Soft]: ...


class EncoderFamily:
    """Sequence classification. Given `vocabulary` (every example the task will ever encode),
    the models keep only the embedding rows those examples use, and ids are renumbered to
    match: a 30K-row embedding of which a task uses a few thousand rows costs a student most
    of its optimizer step (bench/throughput.py), and the rows no example uses cannot change
    any output, so the trimmed model computes exactly what the whole one would."""

    name = "encoder"

    def __init__(
        self, task: TaskSpec, tokenizer: Any, vocabulary: Sequence[Example] | None = None
    ) -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.kept_ids: tuple[int, ...] | None = None  # the tokenizer's ids the models keep
        self._renumber: dict[int, int] = {}
        self._tokenized: dict[str, list[int]] = {}  # token ids by source text
        if vocabulary is not None:
            self.kept_ids, self._renumber = _vocabulary(tokenizer, self._token_ids(vocabulary))
        self.pad_id = self._renumber.get(int(tokenizer.pad_token_id), int(tokenizer.pad_token_id))

    def _token_ids(self, examples: Sequence[Example]) -> list[list[int]]:
        sources = [e.source for e in examples]
        return _cached_ids(self._tokenized, self.tokenizer, sources, self.task.max_source_tokens)

    def trim(self, model: Any) -> Any:
        """The model with only the kept embedding rows (as is without a vocabulary)."""
        if self.kept_ids is None:
            return model
        embedding = model.get_input_embeddings()
        pad = embedding.padding_idx
        rows = torch.tensor(self.kept_ids)
        model.set_input_embeddings(
            _kept_rows(embedding, rows, None if pad is None else self._renumber[pad])
        )
        model.config.vocab_size = len(self.kept_ids)
        return model

    def encode(self, examples: Sequence[Example], with_targets: bool) -> list[Item]:
        ids = _renumbered(self._token_ids(examples), self._renumber, self.tokenizer)
        labels = {name: i for i, name in enumerate(self.task.labels)}
        return [
            Item(row, label=labels[e.target] if with_targets else -1)
            for row, e in zip(ids, examples, strict=True)
        ]

    def _forward(self, model: Any, items: Sequence[Item], device: torch.device) -> torch.Tensor:
        input_ids = _pad([i.input_ids for i in items], self.pad_id).to(device)
        with autocast(device):
            logits: torch.Tensor = model(
                input_ids=input_ids, attention_mask=(input_ids != self.pad_id).long()
            ).logits
        return logits.float()

    def loss(self, model: Any, items: Sequence[Item], device: torch.device) -> torch.Tensor:
        labels = torch.tensor([i.label for i in items], device=device)
        return F.cross_entropy(self._forward(model, items, device), labels)

    def distill_loss(
        self,
        student: Any,
        items: Sequence[Item],
        softs: Sequence[Soft],
        temperature: float,
        device: torch.device,
    ) -> torch.Tensor:
        teacher = torch.stack([s.logits for s in softs]).to(device)
        return kd_loss(self._forward(student, items, device), teacher, temperature)

    def predict(self, model: Any, items: Sequence[Item], device: torch.device) -> list[str]:
        with torch.inference_mode():
            ids = self._forward(model, items, device).argmax(-1).tolist()
        return [self.task.labels[i] for i in ids]

    def finish(self, predictions: list[str], examples: Sequence[Example]) -> list[str]:
        return predictions

    def soft_targets(self, teacher: Any, items: Sequence[Item], device: torch.device) -> list[Soft]:
        with torch.inference_mode():
            logits = self._forward(teacher, items, device).cpu()
        return [Soft(row.clone()) for row in logits]


_TAG = re.compile(f"({TYPE_TAG.pattern})")  # splits a target around its type tags


def restore_case(prediction: str, source: str) -> str:
    """An uncased model's prediction with each span between type tags replaced by the source
    text it matches ignoring case and spacing ("0. 5 %" -> "0.5%"): the paper's exact-match
    metrics then judge what was found, not the tokenizer. A span found nowhere in the source
    keeps its words, each cased as the source writes it where the source has it."""
    cased = {w.lower(): w for w in re.findall(r"\w+", source)}

    def recase_word(m: re.Match[str]) -> str:
        return cased.get(m.group(0).lower(), m.group(0))

    out = []
    for part in _TAG.split(prediction):
        chars = [re.escape(c) for c in part if not c.isspace()]
        if not chars or _TAG.fullmatch(part):
            out.append(part)
            continue
        found = re.search(r"\s*".join(chars), source, re.IGNORECASE)
        lead, trail = part[: len(part) - len(part.lstrip())], part[len(part.rstrip()) :]
        text = found.group(0) if found else re.sub(r"\w+", recase_word, part.strip())
        out.append(lead + text + trail)
    return "".join(out)


class Seq2SeqFamily:
    name = "seq2seq"

    def __init__(
        self,
        task: TaskSpec,
        tokenizer: Any,
        top_k: int = 16,
        vocabulary: Sequence[Example] | None = None,
        targets: Sequence[Example] = (),
    ) -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.top_k = top_k
        # A BERT-style tokenizer (the warm-started models') has no end-of-text token: texts
        # end with [SEP] and start with [CLS], which the decoder starts with by itself, so
        # targets drop it. Other tokenizers' targets are kept as they are.
        bert_style = tokenizer.eos_token_id is None and tokenizer.cls_token_id is not None
        start = tokenizer.cls_token_id if bert_style else None
        eos = int(tokenizer.sep_token_id if bert_style else tokenizer.eos_token_id)
        # What a model is built with (the tokenizer's ids); `trim` renumbers them.
        self.model_ids = (int(tokenizer.pad_token_id), eos, start)
        probe = tokenizer("A", add_special_tokens=False)["input_ids"]
        self.uncased = tokenizer.decode(probe).strip() == "a"
        # Given `vocabulary` (every example whose source the task encodes) and `targets` (the
        # examples whose targets it trains on), the models keep only the token rows those
        # use: outputs are then limited to them (unlike an encoder's trim, not exact), and
        # MiniLM's 30K-row output layer no longer dominates a CPU step.
        self.kept_ids: tuple[int, ...] | None = None
        self._renumber: dict[int, int] = {}
        self._tokenized: dict[str, list[int]] = {}  # token ids by source text
        if vocabulary is not None:
            rows = self._sources(vocabulary) + self._targets(targets)
            self.kept_ids, self._renumber = _vocabulary(tokenizer, rows)
        self.pad_id, self.eos_id = (self._renumber.get(i, i) for i in self.model_ids[:2])
        self.start_id: int | None = None if start is None else self._renumber.get(start, start)

    def _sources(self, examples: Sequence[Example]) -> list[list[int]]:
        sources = [self.task.prefix + e.source for e in examples]
        return _cached_ids(self._tokenized, self.tokenizer, sources, self.task.max_source_tokens)

    def _targets(self, examples: Sequence[Example]) -> list[list[int]]:
        if not examples:
            return []
        targets = self.tokenizer(
            [e.target for e in examples], truncation=True, max_length=self.task.max_target_tokens
        )["input_ids"]
        start = self.model_ids[2]
        return [t[1:] if start is not None and t[:1] == [start] else t for t in targets]

    def trim(self, model: Any) -> Any:
        """An encoder-decoder (the warm-started models) with only the kept token rows in both
        embeddings and the output layer; as is without a vocabulary."""
        if self.kept_ids is None:
            return model
        rows = torch.tensor(self.kept_ids)
        encoder, decoder = model.get_encoder(), model.get_decoder()
        head = decoder.get_output_embeddings()
        tied = head.weight is decoder.get_input_embeddings().weight
        for half in (encoder, decoder):
            half.set_input_embeddings(_kept_rows(half.get_input_embeddings(), rows, self.pad_id))
        new_head = torch.nn.Linear(head.in_features, len(rows)).to(head.weight.device)
        with torch.no_grad():
            if tied:
                new_head.weight = decoder.get_input_embeddings().weight
            else:
                new_head.weight.copy_(head.weight.index_select(0, rows.to(head.weight.device)))
            new_head.bias.copy_(head.bias.index_select(0, rows.to(head.bias.device)))
        decoder.set_output_embeddings(new_head)
        for config in (model.config.encoder, model.config.decoder, decoder.config):
            config.vocab_size = len(rows)
        for config in (model.config, model.generation_config):
            config.decoder_start_token_id = self.start_id
            config.pad_token_id, config.eos_token_id = self.pad_id, self.eos_id
        return model

    def encode(self, examples: Sequence[Example], with_targets: bool) -> list[Item]:
        sources = _renumbered(self._sources(examples), self._renumber, self.tokenizer)
        if not with_targets:
            return [Item(s) for s in sources]
        targets = _renumbered(self._targets(examples), self._renumber, self.tokenizer)
        return [Item(s, target_ids=tuple(t)) for s, t in zip(sources, targets, strict=True)]

    def _inputs(self, items: Sequence[Item], device: torch.device) -> dict[str, torch.Tensor]:
        input_ids = _pad([i.input_ids for i in items], self.pad_id).to(device)
        return {"input_ids": input_ids, "attention_mask": (input_ids != self.pad_id).long()}

    def _logits(
        self, model: Any, items: Sequence[Item], targets: Sequence[Sequence[int]], device: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        labels = _pad(targets, -100).to(device)
        # Teacher forcing: the decoder reads the target shifted right behind its start token.
        # (Given `labels=`, the models would shift it themselves but also compute a loss over
        # the whole vocabulary that nothing here uses.)
        start = labels.new_full((len(targets), 1), int(model.config.decoder_start_token_id))
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        shifted = shifted.masked_fill(shifted == -100, self.pad_id)
        with autocast(device):
            logits = model(**self._inputs(items, device), decoder_input_ids=shifted).logits
        return logits.float(), labels

    def loss(self, model: Any, items: Sequence[Item], device: torch.device) -> torch.Tensor:
        logits, labels = self._logits(model, items, [i.target_ids for i in items], device)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def distill_loss(
        self,
        student: Any,
        items: Sequence[Item],
        softs: Sequence[Soft],
        temperature: float,
        device: torch.device,
    ) -> torch.Tensor:
        logits, labels = self._logits(student, items, [s.target_ids for s in softs], device)
        mask = labels != -100
        width = logits.shape[1]
        # Teacher top-k logits and their vocabulary ids, padded to the batch's target width.
        t_logits = torch.full((len(softs), width, self.top_k), -1e4, device=device)
        t_index = torch.zeros((len(softs), width, self.top_k), dtype=torch.long, device=device)
        for row, soft in enumerate(softs):
            n = soft.logits.shape[0]
            t_logits[row, :n] = soft.logits.to(device)
            assert soft.indices is not None
            t_index[row, :n] = soft.indices.to(device)
        t_log_p = F.log_softmax(t_logits / temperature, dim=-1)
        s_log_q = F.log_softmax(logits / temperature, dim=-1).gather(-1, t_index)
        kl = (t_log_p.exp() * (t_log_p - s_log_q)).sum(-1)
        return (kl * mask).sum() / mask.sum().clamp(min=1) * temperature * temperature

    def _generate(self, model: Any, items: Sequence[Item], device: torch.device) -> torch.Tensor:
        with torch.inference_mode(), autocast(device):
            out: torch.Tensor = model.generate(
                **self._inputs(items, device),
                max_new_tokens=self.task.max_target_tokens,
                do_sample=False,
                num_beams=1,
            )
        return out

    def predict(self, model: Any, items: Sequence[Item], device: torch.device) -> list[str]:
        ids = self._generate(model, items, device)
        if self.kept_ids is not None:  # back to the tokenizer's ids
            ids = torch.tensor(self.kept_ids, device=ids.device)[ids]
        texts: list[str] = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def finish(self, predictions: list[str], examples: Sequence[Example]) -> list[str]:
        """Predictions as scored: re-cased from the source where the tokenizer lower-cases."""
        if not self.uncased:
            return predictions
        return [restore_case(p, e.source) for p, e in zip(predictions, examples, strict=True)]

    def soft_targets(self, teacher: Any, items: Sequence[Item], device: torch.device) -> list[Soft]:
        generated = self._generate(teacher, items, device)[:, 1:]  # drop the start token
        targets = []
        for row in generated.tolist():
            ids = [t for t in row if t != self.pad_id]
            targets.append(tuple(ids) or (self.eos_id,))
        with torch.inference_mode():
            logits, _ = self._logits(teacher, items, targets, device)
            values, indices = logits.topk(self.top_k, dim=-1)
        return [
            Soft(values[r, : len(t)].cpu().clone(), indices[r, : len(t)].cpu().clone(), t)
            for r, t in enumerate(targets)
        ]
