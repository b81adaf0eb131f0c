"""GPU-only checks (marker `gpu`, skipped without CUDA): bf16 autocast, sharded teachers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from objectives import models
from objectives.distill_or_annotate import run_trial
from objectives.families import autocast
from objectives.trial_config import trial_config
from tests.conftest import REPO_DATA

pytestmark = pytest.mark.gpu


def test_a_trial_runs_on_the_gpu_in_bf16(tiny_task: Path) -> None:
    result = run_trial(
        trial_config(
            {
                "task": "tiny",
                "task_file": str(tiny_task),
                "budget_usd": 12.0,
                "n_seed_labels": 20,
                "compute_fraction": 0.5,
                "teacher": "bert-offline-student",
                "student": "bert-offline-student",
                "teacher_epochs": 2,
                "distill_epochs": 1,
                "hardware": "h100",
                "usd_per_device_hour": 2e6,
            }
        )
    )
    assert math.isfinite(result.score) and result.teacher_status == "finished"


def test_a_seq2seq_trial_distils_on_the_gpu_from_the_shipped_data() -> None:
    result = run_trial(
        trial_config(
            {
                "task": "fever",
                "data_dir": str(REPO_DATA),
                "family": "seq2seq",
                "budget_usd": 60.0,
                "n_seed_labels": 200,
                "compute_fraction": 0.5,
                "teacher": "t5-offline-teacher",
                "student": "t5-offline-student",
                "teacher_epochs": 2,
                "distill_epochs": 1,
                "teacher_lr": 1e-3,
                "student_lr": 1e-3,
                "max_unlabelled": 256,
                "max_eval_examples": 100,
                "hardware": "h100",
                "usd_per_device_hour": 2e6,
            }
        )
    )
    assert result.teacher_status == "finished" and result.n_unlabelled > 0
    assert math.isfinite(result.score) and result.details["seconds_teacher"] > 0


def test_the_gpu_path_computes_in_bf16_over_fp32_weights() -> None:
    device = torch.device("cuda")
    layer = torch.nn.Linear(64, 64).to(device)
    with autocast(device):
        out = layer(torch.randn(8, 64, device=device))
    assert torch.cuda.is_bf16_supported() and out.dtype == torch.bfloat16
    assert next(layer.parameters()).dtype == torch.float32


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs"
)
def test_a_teacher_is_sharded_over_the_trials_gpus(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    model = models.seq2seq_model("t5-offline-teacher", 4000, 0, 1)
    model.save_pretrained(tmp_path / "teacher")
    sharded = models.seq2seq_model(str(tmp_path / "teacher"), 4000, 0, 1, n_devices=2)
    assert len(set(sharded.hf_device_map.values())) >= 2
    assert next(sharded.parameters()).dtype == torch.bfloat16
