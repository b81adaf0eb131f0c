"""Plans are what the loops charge: a stage the plan affords is one the meter lets finish."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from objectives import models
from objectives.data import load_task_data
from objectives.families import EncoderFamily, Item
from objectives.meter import ComputeMeter, get_profile
from objectives.planning import affordable_pool, teacher_flops
from objectives.tasks import get_task
from objectives.train import TrainSettings, distill, fit, soft_targets
from objectives.trial_config import TrialConfig, trial_config
from tests.conftest import REPO_DATA

CPU = torch.device("cpu")
PRICE = 3600.0  # $1 a device-second: dollars read as seconds on the `cpu` profile


def _setup() -> tuple[EncoderFamily, Any, list[Item], list[Item]]:
    """FEVER claims (4-27 tokens, unsorted: the pool's windows pad unevenly) and a tiny
    encoder as teacher and student."""
    spec = get_task("fever")
    data = load_task_data(spec, REPO_DATA)
    tokenizer = models.encoder_tokenizer("bert-offline-student")
    family = EncoderFamily(spec, tokenizer)
    torch.manual_seed(0)
    model = models.encoder_model("bert-offline-student", len(spec.labels), tokenizer.vocab_size)
    labelled = family.encode(data.train[:230], with_targets=True)
    pool = family.encode(data.train[230:470], with_targets=False)
    return family, model, labelled, pool


def _cfg(**fields: Any) -> TrialConfig:
    values = {"task": "fever", "budget_usd": 1, "n_seed_labels": 1, "compute_fraction": 1}
    return trial_config({**values, "batch_size": 4, **fields}, preset="cpu-small")


def _meter(budget_usd: float) -> ComputeMeter:
    return ComputeMeter(budget_usd, PRICE, "estimated", get_profile("cpu"))


def test_the_teacher_plan_is_what_fit_charges() -> None:
    """Planned on fit's own batches (length-grouped within shuffled windows of 50 batches:
    230 claims at batch 4 are two windows), not on the sorted whole."""
    family, model, labelled, _ = _setup()
    cfg = _cfg(teacher_epochs=2)
    meter = _meter(1e9)
    settings = TrainSettings(epochs=2, learning_rate=1e-4, batch_size=4, seed=cfg.seed, device=CPU)
    fit(model, family, labelled, settings, meter=meter)
    assert teacher_flops(labelled, models.n_parameters(model), cfg) == pytest.approx(meter.flops)


@pytest.mark.parametrize("gold_weight", [0.0, 0.5])
def test_a_pool_the_plan_affords_is_labelled_and_distilled_to_the_end(gold_weight: float) -> None:
    family, model, labelled, pool = _setup()
    cfg = _cfg(gold_weight=gold_weight, distill_epochs=2, min_distill_steps=0)
    params = models.n_parameters(model)
    for budget_usd in (0.04, 0.1, 0.2):
        meter = _meter(budget_usd)
        n = affordable_pool(
            meter,
            pool,
            cfg,
            teacher_params=params,
            student_params=params,
            max_new_tokens=0,
            gold=labelled,
        )
        assert n % 4 == 0 and 0 < n < len(pool), (budget_usd, n)
        softs = soft_targets(model, family, pool[:n], batch_size=4, device=CPU, meter=meter)
        finished = distill(
            model,
            family,
            pool[:n],
            softs,
            TrainSettings(
                epochs=cfg.distill_epochs_for(n),
                learning_rate=1e-4,
                batch_size=4,
                seed=0,
                device=CPU,
            ),
            temperature=2.0,
            meter=meter,
            gold=labelled,
            gold_weight=gold_weight,
        )
        assert finished, (budget_usd, n, meter.remaining_usd)
        # Not much left over: the next window would not have fitted with its distillation.
        assert meter.remaining_usd < 0.25 * budget_usd


def test_a_pool_under_a_batch_is_taken_whole_or_not_at_all() -> None:
    _, model, _, pool = _setup()
    params = models.n_parameters(model)
    kwargs: dict[str, Any] = {"teacher_params": params, "student_params": params}
    small = pool[:3]
    assert affordable_pool(_meter(10.0), small, _cfg(), max_new_tokens=0, **kwargs) == 3
    assert affordable_pool(_meter(1e-6), small, _cfg(), max_new_tokens=0, **kwargs) == 0


def test_a_measured_plan_goes_by_the_rate_its_steps_ran_at() -> None:
    """A measured meter plans at the slower of its profile and what its steps took, and
    keeps its last step's noise free: sized by the profile alone, soft labels would eat
    the money distillation needs."""
    now = [0.0]
    meter = ComputeMeter(100.0, PRICE, "measured", get_profile("cpu"), clock=lambda: now[0])
    flops = get_profile("cpu").flops_per_second  # one profile-second of work
    assert meter.planned_usd(flops) == pytest.approx(1.0)
    assert meter.step_headroom_usd() == 0.0
    meter.begin(flops)
    now[0] += 4.0  # ran 4x slower than the profile
    meter.end(flops)
    assert meter.planned_usd(flops) == pytest.approx(4.0)
    assert meter.step_headroom_usd() == pytest.approx(5.0)  # 1.25 x the dearest step
    assert _meter(10.0).planned_usd(flops) == pytest.approx(1.0)  # estimated: the profile
