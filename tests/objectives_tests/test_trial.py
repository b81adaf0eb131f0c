"""Contract tests of the real objective on a tiny generated task with tiny real models."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from objectives.distill_or_annotate import run_trial
from objectives.trial_config import TrialConfig, TrialResult, trial_config
from tests.conftest import REPO_DATA

# Tiny models priced dearly, so that the compute meter really binds at a $20 budget.
TINY = {
    "teacher": "bert-offline-student",
    "student": "bert-offline-student",
    "teacher_epochs": 3,
    "student_epochs": 4,
    "distill_epochs": 2,
    "teacher_lr": 3e-3,
    "student_lr": 3e-3,
    "batch_size": 16,
    "hardware": "cpu",
    "usd_per_device_hour": 20000.0,
    "n_threads": 1,
}


DEAR: dict[str, Any] = {"usd_per_device_hour": 150000.0}


def _config(tiny_task: Path, **overrides: Any) -> TrialConfig:
    fields = {
        "task": "tiny",
        "task_file": str(tiny_task),
        "budget_usd": 12.0,
        "n_seed_labels": 20,
        "compute_fraction": 0.5,
        **TINY,
        **overrides,
    }
    return trial_config(fields)


def _run(cfg: TrialConfig) -> tuple[TrialResult, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []
    return run_trial(cfg, reports.append), reports


def _check_money(r: TrialResult) -> None:
    assert r.compute_spent_usd <= r.compute_usd + 1e-9
    assert r.practitioner_usd <= r.budget_usd + 1e-9
    spent = r.annotation_usd + r.compute_spent_usd
    assert spent + r.unspent_usd == pytest.approx(r.budget_usd, abs=0.005)
    assert r.practitioner_usd == pytest.approx(r.annotation_usd + r.compute_spent_usd)
    assert r.sweep_device_seconds > 0


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_contract_of_the_real_objective(tiny_task: Path, fraction: float) -> None:
    result, reports = _run(_config(tiny_task, compute_fraction=fraction))
    assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0
    assert reports and reports[-1]["stage"] == "final" and len(reports) >= 2
    assert reports[-1]["score"] == result.score
    # Where the trial is, for people: each stage's start, then its training steps.
    phases = [r["phase"] for r in reports if r["stage"] == "progress" and r["step"] == 0]
    stages = ["prepare", "teacher", "soft_labels", "student", "evaluate"]
    assert phases == (stages if fraction else ["prepare", "student", "evaluate"])
    student_loop = "distill" if fraction else "annotate"
    steps = [r for r in reports if r.get("phase") == student_loop and r["step"] > 0]
    assert steps and steps[-1]["step"] == steps[-1]["steps"]
    _check_money(result)
    # Against the trivial predictor on the same dev rows: accuracy's paired margin is the
    # difference of the two scores, inside its own interval.
    assert result.trivial_score is not None and result.trivial_predictor.startswith("majority")
    assert result.margin == pytest.approx(result.score - result.trivial_score)
    assert result.margin_low is not None and result.margin_high is not None
    assert result.margin_low <= result.margin <= result.margin_high
    assert result.top_prediction in ("neg", "pos") and result.top_prediction_share is not None
    learned = result.margin_low > 0 and result.top_prediction_share < 1
    assert ("student" in result.degenerate.split(",")) is not learned
    assert (result.teacher_margin is not None) is (result.teacher_score is not None)
    assert result.n_new_labels == math.floor((1 - fraction) * 12.0 / 0.1 + 1e-9)
    if fraction == 0.0:
        assert result.strategy == "annotate" and result.teacher_status == "not_needed"
        assert result.compute_spent_usd == 0.0
    else:
        assert result.teacher_status == "finished" and result.n_unlabelled > 0
        assert result.teacher_score is not None


def test_a_pilot_scores_the_dev_split_alone(tiny_task: Path) -> None:
    both, _ = _run(_config(tiny_task, compute_fraction=0.0))
    dev_only, _ = _run(_config(tiny_task, compute_fraction=0.0, score_test=False))
    assert both.test_score is not None and dev_only.test_score is None
    assert dev_only.score == both.score  # the same student, scored on the same dev rows


def test_deterministic_under_a_seed(tiny_task: Path) -> None:
    first, _ = _run(_config(tiny_task))
    second, _ = _run(_config(tiny_task))
    changing = {"sweep_device_seconds", "sweep_spent_usd", "details"}  # real seconds differ

    def stable(r: TrialResult) -> dict[str, Any]:
        out = {k: v for k, v in r.to_dict().items() if k not in changing}
        out["details"] = {k: v for k, v in r.details.items() if not k.startswith("seconds_")}
        return out

    assert stable(first) == stable(second)


def test_stops_when_the_meter_runs_out(tiny_task: Path) -> None:
    # The teacher fine-tune alone costs more than the compute dollars: not started, unspent.
    starved, _ = _run(_config(tiny_task, usd_per_device_hour=5e6))
    assert starved.teacher_status == "unaffordable"
    assert starved.compute_spent_usd == 0.0 and starved.n_unlabelled == 0
    assert math.isfinite(starved.score)  # the student still learns from its gold labels
    # Enough for the teacher but not for the whole pool: distillation is cut by the money.
    rich, _ = _run(_config(tiny_task))
    lean, _ = _run(_config(tiny_task, usd_per_device_hour=200000.0))
    assert lean.teacher_status == "finished"
    assert 0 < lean.n_unlabelled < rich.n_unlabelled
    assert lean.compute_spent_usd <= lean.compute_usd
    assert lean.compute_spent_usd > 0.8 * lean.compute_usd  # the money was used, not hoarded


def test_measured_meter_never_overspends(tiny_task: Path) -> None:
    result, _ = _run(_config(tiny_task, meter="measured", usd_per_device_hour=2000.0))
    _check_money(result)
    assert result.device_seconds > 0


def test_stage_cache_reuses_teacher_and_soft_labels(tiny_task: Path, tmp_path: Path) -> None:
    cfg = _config(tiny_task, cache_dir=str(tmp_path / "cache"))
    cold, _ = _run(cfg)
    warm, _ = _run(cfg)
    assert (cold.teacher_cache, cold.soft_cache) == ("miss", "miss")
    assert (warm.teacher_cache, warm.soft_cache) == ("hit", "hit")
    # Same scores, and the allocation ledger still charges the full standalone cost.
    assert warm.score == cold.score and warm.teacher_score == cold.teacher_score
    # The teacher's dev predictions are cached with it: its margin needs no new pass.
    assert warm.teacher_margin == cold.teacher_margin is not None
    assert warm.compute_spent_usd == pytest.approx(cold.compute_spent_usd)
    uncached, _ = _run(dataclasses.replace(cfg, cache_dir=None))
    assert uncached.score == cold.score
    # A teacher's dev score is cached with its metric's name: one scored by another metric
    # (a task file's changed since, or a fallback) is scored again, not read across scales.
    (meta_file,) = [
        m for m in (tmp_path / "cache").rglob("meta.json") if "dev_score" in m.read_text()
    ]
    meta = json.loads(meta_file.read_text())
    (dev_key,) = meta["dev_score"]
    assert meta["dev_score"][dev_key] == [cold.metric, cold.teacher_score]
    meta["dev_score"][dev_key] = ["macro_f1", 0.123]
    meta_file.write_text(json.dumps(meta))
    rescored, _ = _run(cfg)
    assert rescored.teacher_cache == "hit" and rescored.teacher_score == cold.teacher_score
    # A larger compute share reuses the teacher only if the labelled set is the same.
    other, _ = _run(dataclasses.replace(cfg, compute_fraction=0.6))
    assert other.teacher_cache == "miss"


def test_soft_label_prefix_is_reused_and_extended(tiny_task: Path, tmp_path: Path) -> None:
    # Pure distillation at two budgets: the same teacher (seed labels only) and the same
    # unlabelled order, so the richer trial extends what the poorer one labelled.
    cache = str(tmp_path / "cache")
    poor, _ = _run(
        _config(tiny_task, cache_dir=cache, compute_fraction=1.0, budget_usd=4.0, **DEAR)
    )
    rich, _ = _run(
        _config(tiny_task, cache_dir=cache, compute_fraction=1.0, budget_usd=12.0, **DEAR)
    )
    again, _ = _run(
        _config(tiny_task, cache_dir=cache, compute_fraction=1.0, budget_usd=4.0, **DEAR)
    )
    assert (poor.teacher_cache, poor.soft_cache) == ("miss", "miss")
    assert (rich.teacher_cache, rich.soft_cache) == ("hit", "partial")
    assert (again.teacher_cache, again.soft_cache) == ("hit", "hit")
    assert 0 < poor.n_unlabelled < rich.n_unlabelled
    assert again.score == poor.score and again.compute_spent_usd == pytest.approx(
        poor.compute_spent_usd
    )
    fresh, _ = _run(_config(tiny_task, compute_fraction=1.0, budget_usd=12.0, **DEAR))
    assert fresh.score == rich.score  # an extended prefix equals a fresh computation


FEVER = {"task": "fever", "budget_usd": 1, "n_seed_labels": 0, "compute_fraction": 0}


def test_a_small_pool_distils_for_more_epochs_up_to_the_minimum_steps() -> None:
    cfg = trial_config(FEVER, "cpu-small")
    assert (cfg.distill_epochs, cfg.min_distill_steps, cfg.batch_size) == (3, 120, 16)
    assert cfg.distill_epochs_for(640) == 3  # 40 steps an epoch: the preset's 3 epochs
    assert cfg.distill_epochs_for(80) == 24  # 5 steps an epoch: 24 epochs make 120 steps
    assert cfg.distill_epochs_for(0) == 3
    paper = trial_config(FEVER)
    assert paper.distill_epochs_for(80) == 50  # the paper's recipe: no minimum
    with pytest.raises(ValueError, match="min_distill_steps=-1"):
        trial_config({**FEVER, "min_distill_steps": -1})


def test_the_minimum_steps_are_paid_from_the_allocation(tiny_task: Path) -> None:
    # Priced so that the pool is cut by the money: with a minimum of steps, each example
    # the pool keeps is distilled more often, so the money affords fewer of them.
    lean = {"usd_per_device_hour": 180000.0}
    plain, _ = _run(_config(tiny_task, **lean))
    steps, reports = _run(_config(tiny_task, min_distill_steps=20, **lean))
    for r in (plain, steps):
        _check_money(r)
    assert 16 <= steps.n_unlabelled < plain.n_unlabelled  # a batch at least, and fewer
    distilled = [r["epoch"] for r in reports if r.get("stage") == "distill"]
    assert max(distilled) > 2  # more than the 2 epochs TINY asks for
    # Dearer still, not even a batch affords the minimum: nothing is distilled, the money
    # stays unspent, and the student learns from its gold labels.
    dear, _ = _run(_config(tiny_task, min_distill_steps=20, usd_per_device_hour=280000.0))
    _check_money(dear)
    assert dear.teacher_status == "finished" and dear.n_unlabelled == 0
    assert dear.unspent_usd > 0


def test_bad_trial_values_are_named(tiny_task: Path) -> None:
    with pytest.raises(ValueError, match="compute_fraction=1.2"):
        _config(tiny_task, compute_fraction=1.2)
    with pytest.raises(ValueError, match="temperature"):
        _config(tiny_task, temperature=0)
    with pytest.raises(ValueError, match="Unknown trial field 'epochs'"):
        trial_config({"task": "tiny", "epochs": 3})
    with pytest.raises(ValueError, match="n_seed_labels=999 for 'tiny'"):
        run_trial(_config(tiny_task, n_seed_labels=999))
    with pytest.raises(ValueError, match="family='encoder' needs a classification task"):
        run_trial(
            trial_config(
                {
                    "task": "nq",
                    "budget_usd": 1,
                    "n_seed_labels": 1,
                    "compute_fraction": 0,
                    "family": "encoder",
                    "data_dir": str(REPO_DATA),
                }
            )
        )


def test_seq2seq_family_runs_a_trial(tiny_task: Path) -> None:
    cfg = _config(
        tiny_task,
        family="seq2seq",
        teacher="t5-offline-student",
        student="t5-offline-student",
        usd_per_device_hour=2000.0,
    )
    result, reports = _run(cfg)
    assert result.teacher_status == "finished" and result.n_unlabelled > 0
    assert math.isfinite(result.score) and reports
    _check_money(result)


def test_seq2seq_defaults_follow_the_hub_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from objectives import models
    from objectives.models import default_seq2seq

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert default_seq2seq() == ("google/t5-v1_1-xxl", "google/t5-v1_1-small")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_seq2seq() == ("minilm2minilm", "minilm2minilm-l2")  # the MiniLM package
    monkeypatch.setattr(models, "local_copy", lambda name: name)  # without it
    assert default_seq2seq() == ("t5-offline-teacher", "t5-offline-student")


def test_a_minilm_model_without_its_package_says_which_extra_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from objectives import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "local_copy", lambda name: name)  # the package absent
    extra = "pip install 'distill-or-annotate[demo]'"
    with pytest.raises(ValueError, match="'minilm2minilm'.*" + re.escape(extra)):
        models.warm_seq2seq_model("minilm2minilm", 100, 0, 1, 2)
    with pytest.raises(ValueError, match=re.escape(extra)):
        models.encoder_model("minilm-l2", 2, 100)
    with pytest.raises(ValueError) as other:
        models.encoder_model("no-such/model", 2, 100)
    assert extra not in str(other.value)  # the hint only where MiniLM is what is missing
