"""The real objective: one trial of "distill or annotate?".

Given a task, an extra budget B, the seed labels and a compute fraction f:
1. buy floor((1-f) B / usd_per_label) labels (a nested prefix of one seeded permutation);
2. f == 0: train the student on every labelled row; done;
3. f > 0: with f B of compute, fine-tune the teacher on the labelled rows, let it produce
   soft targets for as much of the unlabelled pool as the rest of the money covers, and
   distill it into the student; every stage draws on one ComputeMeter;
4. score the student on dev (the objective) and test (reported, never optimised).

This module runs a trial and keeps its ledger (the meter, the stage timings, the result);
`objectives.trial_setup` prepares what the stages share, and `objectives.trial_stages`
holds the stages themselves. Heavy imports (torch, transformers) live here and below;
`run_trial` is the only entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from objectives import models
from objectives.baselines import compare, degenerate_lines
from objectives.families import Item, Soft
from objectives.meter import ComputeMeter, RealClock, get_profile, meter_cost_model
from objectives.metrics import MetricResult, score
from objectives.trial_config import CacheStatus, Report, TrialConfig, TrialResult
from objectives.trial_setup import Trial, prepare_trial
from objectives.trial_stages import TeacherOutcome, soft_label_stage, student_stage, teacher_stage

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _timed(timings: dict[str, float], trial: str, stage: str, report: Report) -> Iterator[None]:
    """Record and log the real seconds a stage took (the sweep ledger, broken down), and
    say that it started (progress for people)."""
    report({"stage": "progress", "phase": stage, "step": 0, "steps": 0})
    started = time.perf_counter()
    yield
    timings[f"seconds_{stage}"] = time.perf_counter() - started
    logger.info("trial %s: %s took %.1f s", trial, stage, timings[f"seconds_{stage}"])


def _step_clock(device: torch.device) -> Callable[[], float]:
    """The clock the meter times steps with. A CUDA step runs after its launch returns, so
    on GPUs each reading first waits for them: else the meter records launch time (its
    real device-seconds, kept in every mode, price cached stages for measured trials)."""
    if device.type != "cuda":
        return time.perf_counter

    def synchronized() -> float:
        for index in range(torch.cuda.device_count()):  # a sharded teacher spans several
            torch.cuda.synchronize(index)
        return time.perf_counter()

    return synchronized


def _evaluate(
    trial: Trial, student: Any, teacher: TeacherOutcome, predictions: list[str]
) -> tuple[MetricResult, dict[str, Any]]:
    """The student's dev score from its `predictions`, and the student and teacher against
    the trivial baseline on the same dev rows (the `TrialResult` fields of
    `objectives.baselines.Comparison`)."""
    dev = score(trial.spec, predictions, trial.dev)
    taught = None
    if teacher.model is not None:
        if teacher.dev_predictions is None:
            teacher.dev_predictions = trial.predict(teacher.model, trial.dev)
        scored = score(trial.spec, teacher.dev_predictions, trial.dev)
        # Scored again from its predictions: a cached score may be by another metric.
        teacher.dev_score, teacher.dev_metric = scored.value, scored.name
        assert scored.stats is not None
        taught = (teacher.dev_predictions, scored.stats)
    assert dev.stats is not None  # every score keeps its per-example statistics
    versus = compare(trial.spec, dev.name, trial.gold, trial.dev, (predictions, dev.stats), taught)
    return dev, versus.fields()


def _write_predictions(path: str, dev: list[str], test: list[str]) -> None:
    """The student's predictions, in the order of the task's dev and test rows (a partial
    file never stands: it is written beside and renamed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps({"dev": dev, "test": test}))
    partial.replace(target)


def run_trial(cfg: TrialConfig, report: Report | None = None) -> TrialResult:
    """Run one trial for real and return its result; `report` receives intermediate scores."""
    report = report or (lambda _: None)
    # Refused before anything is loaded or written: a paper meter the task cannot price.
    cost_model = meter_cost_model(cfg.meter, cfg.task_spec(), cfg.charge_student_training)
    if cfg.n_threads:
        torch.set_num_threads(cfg.n_threads)
    clock = RealClock(cfg.n_devices)
    name = f"{cfg.task}/B={cfg.budget_usd:g}/f={cfg.compute_fraction:.2f}/seed={cfg.seed}"
    timings: dict[str, float] = {}
    with _timed(timings, name, "prepare", report):
        trial = prepare_trial(cfg, report)
        student = trial.build(trial.student_name)
    allocation = trial.allocation
    prices = cfg.prices(trial.spec)
    meter = ComputeMeter(
        allocation.compute_usd,
        prices.usd_per_device_hour,
        cfg.meter,
        get_profile(cfg.hardware),
        cfg.n_devices,
        clock=_step_clock(trial.device),
        cost_model=cost_model,
    )
    # The student's training on gold labels is uncharged by default, as in the paper; when
    # charged it draws on the same compute dollars as everything else.
    student_meter = meter if prices.charge_student_training else None
    teacher = TeacherOutcome(None, "not_needed", "off", "")
    soft_items: list[Item] = []
    softs: list[Soft] = []
    soft_cache: CacheStatus = "off"
    if allocation.compute_fraction > 0:
        with _timed(timings, name, "teacher", report):
            teacher = teacher_stage(trial, meter)
        if teacher.model is not None:
            with _timed(timings, name, "soft_labels", report):
                soft_items, softs, soft_cache = soft_label_stage(
                    trial, teacher, meter, models.n_parameters(student)
                )
    with _timed(timings, name, "student", report):
        distilled = student_stage(trial, student, soft_items, softs, meter, student_meter)
    with _timed(timings, name, "evaluate", report):
        dev_predictions = trial.predict(student, trial.dev)
        dev, versus = _evaluate(trial, student, teacher, dev_predictions)
        test_predictions = trial.predict(student, trial.test) if cfg.score_test else []
        test = score(trial.spec, test_predictions, trial.test).value if test_predictions else None
        if cfg.predictions_file:
            _write_predictions(cfg.predictions_file, dev_predictions, test_predictions)
    for line in degenerate_lines({"metric": dev.name, **versus}):
        logger.warning("trial %s: %s", name, line)
    result = TrialResult.from_allocation(
        allocation,
        compute_spent_usd=meter.spent_usd,
        device_seconds=meter.device_seconds,
        seed=cfg.seed,
        metric=dev.name,
        score=dev.value,
        test_score=test,
        teacher_score=teacher.dev_score,
        teacher_status=teacher.status,
        n_labels_used=trial.n_labels_used,
        n_unlabelled=len(softs),
        sweep_device_seconds=clock.device_seconds,
        sweep_spent_usd=prices.device_hours_usd(clock.device_seconds),
        teacher_cache=teacher.cache,
        soft_cache=soft_cache,
        score_low=dev.score_low,
        score_high=dev.score_high,
        details={
            **{f"dev_{k}": v for k, v in dev.details.items()},
            "overrun_device_seconds": meter.overrun_device_seconds,
            "distill_cut_short": float(not distilled),  # the meter stopped it: flagged
            "charged_flops": meter.flops,
            **timings,
        },
        **versus,
    )
    report({"stage": "final", **{k: v for k, v in result.to_dict().items() if k != "details"}})
    logger.info("trial %s: %s=%.4f", name, result.metric, result.score)
    return result
