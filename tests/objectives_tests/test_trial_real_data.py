"""Real trials on the team's data samples (slow): each model family end to end, and the
paper tasks' teachers against their trivial baselines (majority class, copying the input)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from objectives import models
from objectives.data import load_task_data
from objectives.distill_or_annotate import run_trial
from objectives.families import EncoderFamily, Seq2SeqFamily
from objectives.metrics import score
from objectives.tasks import get_task
from objectives.train import TrainSettings, fit, predict
from objectives.trial_config import trial_config

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")

# Tests of a teacher: the student after it distils one short pass and reports nothing.
TEACHER_ONLY = {"min_distill_steps": 1, "distill_epochs": 1, "n_reports": 0}


def test_seq2seq_trial_with_the_warm_started_offline_models(shared_data: Path) -> None:
    """The offline seq2seq path end to end (MiniLM's tokenizer, the decoder's start token,
    re-cased predictions), on the smaller warm start to stay quick."""
    cfg = trial_config(
        {
            "task": "nq",
            "teacher": "minilm2minilm-l2",
            "student": "minilm2minilm-l2",
            "data_dir": str(shared_data),
            "budget_usd": 20.0,
            "n_seed_labels": 100,
            "compute_fraction": 0.5,
            "max_unlabelled": 32,
            "max_eval_examples": 32,
            # The path is the point here, not how well it learns: short, and no test score.
            "teacher_epochs": 2,
            "score_test": False,
            "n_reports": 0,
            "usd_per_device_hour": 5.0,
            "distill_epochs": 1,
            "min_distill_steps": 1,
        },
        preset="cpu-small",
    )
    result = run_trial(cfg)
    assert result.metric == "squad_f1" and result.teacher_status == "finished"
    assert result.n_unlabelled == 32 and 0.0 <= result.score <= 1.0
    assert result.practitioner_usd <= result.budget_usd


def test_the_fever_teacher_beats_the_majority_class_at_500_labels() -> None:
    """The shipped FEVER sample (tests/data): the pretrained MiniLM teacher, with FEVER's own
    cpu-small learning rate (TaskSpec.recipes), learns the claims, not the majority class."""
    data = Path(__file__).resolve().parents[1] / "data"
    lines = (data / "fever" / "dev.jsonl").read_text().splitlines()
    dev = [json.loads(line)["target"] for line in lines if line]
    majority = max(dev.count("SUPPORTS"), dev.count("REFUTES"))
    cfg = trial_config(
        {
            "task": "fever",
            "data_dir": str(data),
            "budget_usd": 12.0,
            "n_seed_labels": 500,
            "compute_fraction": 0.95,
            "max_unlabelled": 32,
            "max_eval_examples": 300,
            "meter": "paper",
            **TEACHER_ONLY,
        },
        preset="cpu-small",
    )
    assert cfg.teacher_lr == 1e-4
    result = run_trial(cfg)
    assert result.teacher_status == "finished" and result.teacher_score is not None
    assert result.teacher_score >= majority / len(dev) + 0.05, (result.teacher_score, majority)


def test_the_multipit_id_teacher_beats_the_majority_class(shared_data: Path) -> None:
    """The team's MultiPIT_Id sample: at 200 labels the pretrained MiniLM teacher tells
    paraphrases apart (the table's teachers: 0.76-0.81 at 100-340 labels; majority 0.54),
    and the whole encoder trial around it holds together (pool, reports, test score, money)."""
    lines = (shared_data / "multipit_id" / "dev.jsonl").read_text().splitlines()
    dev = [json.loads(line)["target"] for line in lines if line][:300]
    majority = max(dev.count("YES"), dev.count("NO")) / len(dev)
    cfg = trial_config(
        {
            "task": "multipit_id",
            "data_dir": str(shared_data),
            "budget_usd": 12.0,
            "n_seed_labels": 200,
            "compute_fraction": 0.95,
            "max_eval_examples": 300,
            "meter": "paper",
            **TEACHER_ONLY,
            "max_unlabelled": 64,
            "n_reports": 2,
        },
        preset="cpu-small",
    )
    reports: list[dict[str, object]] = []
    result = run_trial(cfg, reports.append)
    assert result.teacher_status == "finished" and result.teacher_score is not None
    assert result.teacher_score >= majority + 0.1, (result.teacher_score, majority)
    assert result.n_unlabelled == 64 and math.isfinite(result.score)
    assert result.test_score is not None and result.practitioner_usd <= result.budget_usd
    assert [r["epoch"] for r in reports if r.get("stage") == "distill"] == [1]


def test_the_stanceosaurus_teacher_beats_its_labels_majority_class(shared_data: Path) -> None:
    """500 Stanceosaurus labels, MiniLM's first 2 layers (the CI-sized version of the
    README's 6-layer measurement), 64 tokens of "claim: C tweet: T", 6 epochs at 5e-4 (0.43,
    0.36, 0.42 on three samples of 500; at 2e-4 it stays on one class). The baseline is the
    majority class of the labels the teacher saw (Discussing): dev's claims are not train's,
    and dev's own majority (Irrelevant, 0.51) is an oracle that no teacher here reaches at
    500 labels (the README's account of what learns offline)."""
    spec = dataclasses.replace(get_task("stanceosaurus"), max_source_tokens=64)
    data = load_task_data(spec, shared_data)
    labelled = random.Random(0).sample(list(data.train), 500)
    majority = Counter(e.target for e in labelled).most_common(1)[0][0]
    tokenizer = models.encoder_tokenizer(models.MINILM_HUB_ID)
    family = EncoderFamily(spec, tokenizer, vocabulary=[*labelled, *data.dev])
    torch.manual_seed(0)
    model = family.trim(models.encoder_model("minilm-l2", len(spec.labels), len(tokenizer)))
    items = family.encode(labelled, with_targets=True)
    settings = TrainSettings(epochs=6, learning_rate=5e-4, batch_size=16, seed=0, device=CPU)
    fit(model, family, items, settings)
    predictions = predict(model, family, family.encode(data.dev, False), batch_size=64, device=CPU)
    learned = score(spec, predictions, data.dev)
    baseline = score(spec, [majority] * len(data.dev), data.dev)
    assert learned.name == "micro_f1" and len(set(predictions)) >= 2
    assert learned.value >= baseline.value + 0.05 and learned.score_low > baseline.value, (
        learned,
        baseline.value,
    )


def test_the_warm_started_encoder_decoder_learns_wlp_beyond_copying_the_input(
    shared_data: Path,
) -> None:
    """The offline seq2seq default's smaller half (MiniLM's first 2 layers as encoder and
    decoder) learns WLP's spans and tags: 128 short protocol sentences, 15 epochs (the
    CI-sized version of the README's 500-label, 6+6-layer measurement). Copying the input
    scores 0: it has no tags."""
    spec = get_task("wlp")
    data = load_task_data(spec, shared_data)
    short = [e for e in data.train if len(e.source.split()) <= 12][:128]
    dev = [e for e in data.dev if len(e.source.split()) <= 12][:100]
    tokenizer = models.seq2seq_tokenizer("minilm2minilm-l2", [e.target for e in data.train])
    # As a trial trims it: the token rows of every split's sources and train's targets.
    splits = [*data.train, *data.dev, *data.test]
    family = Seq2SeqFamily(spec, tokenizer, vocabulary=splits, targets=data.train)
    torch.manual_seed(0)
    pad, eos, start = family.model_ids
    model = family.trim(
        models.seq2seq_model("minilm2minilm-l2", len(tokenizer), pad, eos, 1, start)
    )
    items = family.encode(short, with_targets=True)
    settings = TrainSettings(epochs=15, learning_rate=1e-3, batch_size=16, seed=0, device=CPU)
    fit(model, family, items, settings)
    predictions = predict(model, family, family.encode(dev, False), batch_size=32, device=CPU)
    learned = score(spec, family.finish(predictions, dev), dev)
    copied = score(spec, [e.source for e in dev], dev)
    assert learned.name == copied.name == "entity_f1"
    assert learned.value >= 0.05 and learned.score_low > copied.value, (learned, copied.value)
