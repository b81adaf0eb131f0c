"""One real trial of each model family on the team's data samples (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from objectives.distill_or_annotate import run_trial
from objectives.trial_config import trial_config

pytestmark = pytest.mark.slow


def test_encoder_trial_with_the_pretrained_minilm_teacher(shared_data: Path) -> None:
    cfg = trial_config(
        {
            "task": "sst2",
            "data_dir": str(shared_data),
            "budget_usd": 10.0,
            "n_seed_labels": 60,
            "compute_fraction": 0.5,
            "max_unlabelled": 256,
            "max_eval_examples": 200,
            "usd_per_device_hour": 100.0,
        },
        preset="cpu-small",
    )
    reports: list[dict[str, object]] = []
    result = run_trial(cfg, reports.append)
    assert result.teacher_status == "finished" and result.n_unlabelled == 256
    assert result.teacher_score is not None and result.teacher_score > 0.6  # pretrained
    assert math.isfinite(result.score) and result.test_score is not None
    assert result.practitioner_usd <= result.budget_usd
    assert len(reports) >= 2


def test_seq2seq_trial_with_offline_t5s(shared_data: Path) -> None:
    cfg = trial_config(
        {
            "task": "nq",
            "data_dir": str(shared_data),
            "budget_usd": 20.0,
            "n_seed_labels": 100,
            "compute_fraction": 0.5,
            "max_unlabelled": 128,
            "max_eval_examples": 64,
            "usd_per_device_hour": 5.0,
            "distill_epochs": 1,
        },
        preset="cpu-small",
    )
    result = run_trial(cfg)
    assert result.metric == "squad_f1" and result.teacher_status == "finished"
    assert result.n_unlabelled == 128 and 0.0 <= result.score <= 1.0
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
        },
        preset="cpu-small",
    )
    assert cfg.teacher_lr == 1e-4
    result = run_trial(cfg)
    assert result.teacher_status == "finished" and result.teacher_score is not None
    assert result.teacher_score >= majority / len(dev) + 0.05, (result.teacher_score, majority)
