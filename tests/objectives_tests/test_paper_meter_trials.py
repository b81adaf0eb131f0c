"""The paper meter and stage-cache re-pricing in real (tiny) trials, a second or two each."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from objectives.budget import CostModel
from objectives.distill_or_annotate import run_trial
from objectives.tasks import load_task_file
from objectives.trial_config import TrialConfig, TrialResult, trial_config
from tests.objectives_tests.test_trial import TINY

# The tiny task's own cost model (dollars): a teacher on L labels costs 0.5 + 20 L / 1000,
# distillation 40 per 1,000 unlabelled examples.
COST_MODEL = (
    "[cost_model]\na_usd = 0.5\nb_usd_per_1k_labelled = 20.0\nd_usd_per_1k_unlabelled = 40.0\n"
)


@pytest.fixture
def priced_task(tiny_task: Path, tmp_path: Path) -> Path:
    """The tiny task with a `[cost_model]` table (its data files made absolute)."""
    text = tiny_task.read_text()
    for split in ("train", "dev", "test"):
        text = text.replace(f'"{split}.jsonl"', f'"{tiny_task.parent / f"{split}.jsonl"}"')
    path = tmp_path / "tiny_priced.toml"
    path.write_text(text + COST_MODEL)
    return path


def _config(task_file: Path, **overrides: Any) -> TrialConfig:
    fields = {
        "task": "tiny",
        "task_file": str(task_file),
        "budget_usd": 12.0,
        "n_seed_labels": 20,
        "compute_fraction": 0.5,
        **TINY,
        **overrides,
    }
    return trial_config(fields)


def test_paper_meter_charges_a_plus_b_l_plus_d_u(priced_task: Path) -> None:
    result = run_trial(_config(priced_task, meter="paper"))
    # f = 0.5 of $12: $6 compute, $6 of labels = 60 + 20 seed = 80 labelled.
    # Teacher: 0.5 + 20 * 80 / 1000 = $2.10. Left $3.90: floor(3.90 / 0.04) = 97 examples,
    # cut to whole windows of 16 = 96. Distillation: 40 * 96 / 1000 = $3.84. Total $5.94.
    assert (result.teacher_status, result.n_labels_used, result.n_unlabelled) == (
        "finished",
        80,
        96,
    )
    assert result.compute_spent_usd == pytest.approx(2.10 + 3.84, abs=1e-9)
    assert result.details["charged_flops"] > 0  # the steps are still counted
    # A teacher the money cannot cover is a scored outcome, as under the other meters:
    # 0.5 + 80 * 80 / 1000 = $6.90 > $6.
    dear = priced_task.read_text().replace("= 20.0", "= 80.0")
    priced_task.write_text(dear)
    starved = run_trial(_config(priced_task, meter="paper"))
    assert starved.teacher_status == "unaffordable" and starved.compute_spent_usd == 0.0


def test_paper_meter_refuses_a_task_without_a_cost_model(tiny_task: Path) -> None:
    with pytest.raises(ValueError, match=r"task 'tiny' has none: add to its task file a \[cost"):
        run_trial(_config(tiny_task, meter="paper"))


def _pair(cfg: TrialConfig) -> tuple[TrialResult, TrialResult]:
    """The trial with the shared cache, and the same trial built from scratch."""
    return run_trial(cfg), run_trial(dataclasses.replace(cfg, cache_dir=None))


def test_a_cached_teacher_is_repriced_at_each_trials_price_and_meter(
    priced_task: Path, tmp_path: Path
) -> None:
    cache = str(tmp_path / "cache")
    cold = run_trial(_config(priced_task, cache_dir=cache))
    assert cold.teacher_cache == "miss"
    # Built at $20,000 per device-hour, reused at $40,000: charged as if built at $40,000.
    warm, fresh = _pair(_config(priced_task, cache_dir=cache, usd_per_device_hour=40000.0))
    assert (warm.teacher_cache, warm.soft_cache) == ("hit", "hit")
    assert warm.compute_spent_usd == pytest.approx(fresh.compute_spent_usd, rel=1e-9)
    assert warm.compute_spent_usd == pytest.approx(2 * cold.compute_spent_usd, rel=1e-9)
    assert warm.details["charged_flops"] == fresh.details["charged_flops"]
    assert warm.score == fresh.score
    # Reused under the paper meter: charged by its size, as a fresh paper trial is.
    paper, fresh_paper = _pair(_config(priced_task, cache_dir=cache, meter="paper"))
    assert paper.teacher_cache == "hit"
    assert paper.compute_spent_usd == pytest.approx(fresh_paper.compute_spent_usd, abs=1e-9)
    assert paper.compute_spent_usd == pytest.approx(5.94, abs=1e-9)
    # Neither the price nor the meter is in the key: every trial above shared one teacher.
    teachers = [p for p in Path(cache).iterdir() if p.is_dir() and p.name.startswith("teacher-")]
    assert len(teachers) == 1


def test_task_files_carry_their_cost_model(priced_task: Path, tmp_path: Path) -> None:
    spec = load_task_file(priced_task)
    assert spec.cost_model == CostModel(0.5, 20.0, 40.0)
    bad = tmp_path / "bad.toml"
    bad.write_text(priced_task.read_text().replace("a_usd", "a"))
    with pytest.raises(ValueError, match="'cost_model' must be a table of exactly a_usd"):
        load_task_file(bad)
    bad.write_text(priced_task.read_text().replace("= 40.0", "= 0"))
    with pytest.raises(ValueError, match="d_usd_per_1k_unlabelled > 0"):
        load_task_file(bad)


def test_the_paper_preset_scores_every_row() -> None:
    fields = {"task": "fever", "budget_usd": 30.0, "n_seed_labels": 100, "compute_fraction": 0.5}
    assert trial_config(fields, "paper").max_eval_examples is None
    assert trial_config(fields, "cpu-small").max_eval_examples == 200


def test_a_usd_reprices_the_teacher_and_predictions_are_kept(
    priced_task: Path, tmp_path: Path
) -> None:
    import json

    # a = $3.00 instead of $0.50: the teacher on 80 labels costs 3 + 1.6 = $4.60 of the $6,
    # leaving $1.40 for floor(1.40 / 0.04) = 35 examples, cut to whole windows of 16 = 32.
    kept = tmp_path / "kept" / "predictions.json"
    cfg = _config(priced_task, meter="paper", a_usd=3.0, predictions_file=str(kept))
    assert cfg.task_spec().cost_model == CostModel(3.0, 20.0, 40.0)
    result = run_trial(cfg)
    assert (result.n_labels_used, result.n_unlabelled) == (80, 32)
    assert result.compute_spent_usd == pytest.approx(4.60 + 40 * 32 / 1000, abs=1e-9)
    # The student's predictions, one per dev and test row, in the rows' order.
    predictions = json.loads(kept.read_text())
    spec = cfg.task_spec()
    from objectives.data import load_task_data
    from objectives.metrics import score

    data = load_task_data(spec, None)
    assert len(predictions["dev"]) == len(data.dev) and len(predictions["test"]) == len(data.test)
    assert score(spec, predictions["dev"], data.dev).value == pytest.approx(result.score)
    assert score(spec, predictions["test"], data.test).value == pytest.approx(result.test_score)
    assert not list(kept.parent.glob("*.partial"))
    with pytest.raises(ValueError, match=r"`a_usd >= 0` must hold, but got a_usd=-1"):
        _config(priced_task, meter="paper", a_usd=-1.0)
