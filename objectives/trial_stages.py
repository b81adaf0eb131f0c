"""The stages of one trial, each drawing on the trial's ComputeMeter.

1. `teacher_stage`: fine-tune the teacher on the labelled rows (or reuse a cached one);
2. `soft_label_stage`: its soft targets for as much of the unlabelled pool as the money
   left covers (cached per whole window);
3. `student_stage`: distil them into the student, or train it on the gold labels alone.

`objectives.distill_or_annotate.run_trial` runs them in order and keeps the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from objectives import models
from objectives.cache import content_key, examples_fingerprint
from objectives.data import take
from objectives.families import Item, Soft
from objectives.meter import BudgetExhausted, ComputeMeter
from objectives.metrics import score
from objectives.planning import affordable_pool, teacher_flops
from objectives.train import distill, fit, soft_targets
from objectives.trial_config import CacheStatus, TeacherStatus
from objectives.trial_setup import Trial


@dataclass
class TeacherOutcome:
    model: Any
    status: TeacherStatus
    cache: CacheStatus
    key: str
    dev_score: float | None = None  # scored once when built, kept in the cache entry
    dev_metric: str | None = None  # by which metric (a fallback may have scored it)
    dev_predictions: list[str] | None = None  # on the dev rows: its trivial baseline's margin


def _teacher_key(trial: Trial) -> str:
    """The teacher's cache key: only what changes the weights. Never the price, hardware
    profile or meter (a hit is re-priced at this trial's), nor the data's path (its
    content is hashed instead)."""
    cfg = trial.cfg
    return content_key(
        "teacher",
        {
            "task": trial.spec.name,  # the input prefix
            "train": examples_fingerprint(trial.data.train),
            "labels": list(trial.spec.labels),  # a classifier head's order
            "family": trial.family.name,
            "teacher": trial.teacher_name,
            "device": trial.device.type,  # CUDA trains under bf16 autocast, a CPU in fp32
            "sharded": cfg.n_devices > 1,  # sharded teachers train in bf16
            "labelled": trial.n_labels_used,  # a prefix of the seeded permutation
            "seed": cfg.seed,
            "epochs": cfg.teacher_epochs,
            "lr": cfg.teacher_lr,
            "batch_size": cfg.batch_size,
            "lengths": [trial.spec.max_source_tokens, trial.spec.max_target_tokens],
            # The token rows a model keeps (every split's tokens): they shape its weights.
            "vocabulary": getattr(trial.family, "kept_ids", None),
        },
    )


def teacher_stage(trial: Trial, meter: ComputeMeter) -> TeacherOutcome:
    """The fine-tuned teacher, from the cache or trained here, unless the money is short."""
    cfg = trial.cfg
    key = _teacher_key(trial)
    if not trial.labelled:
        return TeacherOutcome(None, "no_labels", "off", key)
    if meter.mode == "paper":
        # The paper's cost model prices the fine-tune as a whole (a + b L / 1000), cached or not.
        usd = meter.teacher_stage_usd(trial.n_labels_used)
        if usd > meter.remaining_usd + 1e-9:
            return TeacherOutcome(None, "unaffordable", "off", key)
        meter.charge_usd(usd)
    dev_key = examples_fingerprint(trial.dev)
    with trial.cache.lock(key):
        entry = trial.cache.get(key)
        if entry is not None:
            # Re-priced at this trial's price and meter, from what building it took.
            flops, seconds = float(entry.meta["flops"]), float(entry.meta["device_seconds"])
            if meter.reused_stage_usd(flops, seconds) > meter.remaining_usd + 1e-9:
                return TeacherOutcome(None, "unaffordable", "hit", key)
            meter.charge_reused_stage(flops, seconds)
            model = trial.build(trial.teacher_name)
            model.load_state_dict(torch.load(entry.path / "model.pt", map_location=trial.device))
            model.eval()
            scored = entry.meta.get("dev_score", {}).get(dev_key)  # [metric, score]
            predictions = entry.meta.get("dev_predictions", {}).get(dev_key)
            if not isinstance(predictions, list):  # an entry from before they were kept
                predictions = trial.predict(model, trial.dev)
            if not isinstance(scored, list):
                result = score(trial.spec, predictions, trial.dev)
                scored = [result.name, result.value]
            return TeacherOutcome(
                model, "finished", "hit", key, float(scored[1]), scored[0], predictions
            )
        model = trial.build(trial.teacher_name)
        planned = teacher_flops(trial.labelled, models.n_parameters(model), cfg)
        if meter.mode == "estimated" and meter.usd_for_flops(planned) > meter.remaining_usd:
            # A planner would not start a fine-tune it cannot finish: the money stays unspent.
            return TeacherOutcome(None, "unaffordable", "off", key)
        before_flops, before_seconds = meter.flops, meter.measured_device_seconds
        finished = fit(
            model,
            trial.family,
            trial.labelled,
            trial.train_settings(cfg.teacher_epochs, cfg.teacher_lr),
            meter=meter,
            on_step=trial.progress("teacher"),
        )
        if not finished:
            return TeacherOutcome(None, "unfinished", "off", key)
        predictions = trial.predict(model, trial.dev)
        dev = score(trial.spec, predictions, trial.dev)
        meta = {  # what building it took, not what it cost: a hit is re-priced
            "flops": meter.flops - before_flops,
            "device_seconds": meter.measured_device_seconds - before_seconds,
            "dev_score": {dev_key: [dev.name, dev.value]},  # keyed by the dev rows scored
            "dev_predictions": {dev_key: predictions},
        }
        with trial.cache.writer(key, meta) as folder:
            torch.save(model.state_dict(), folder / "model.pt")
        cache: CacheStatus = "miss" if trial.cache.enabled else "off"
        return TeacherOutcome(model, "finished", cache, key, dev.value, dev.name, predictions)


def _max_new_tokens(trial: Trial) -> int:
    return trial.spec.max_target_tokens if trial.family.name == "seq2seq" else 0


def _pool_size(
    trial: Trial,
    teacher: TeacherOutcome,
    meter: ComputeMeter,
    items: list[Item],
    student_params: int,
) -> int:
    """How many of `items` get soft labels: whole windows (cached prefixes stay exact), a
    pool under a batch only whole."""
    bs = trial.cfg.batch_size
    if meter.mode == "paper":
        n = min(len(items), meter.affordable_unlabelled())  # d U / 1000 dollars for U
        return n - n % bs if n >= bs else (n if n == len(items) else 0)
    return affordable_pool(
        meter,
        items,
        trial.cfg,
        teacher_params=models.n_parameters(teacher.model),
        student_params=student_params,
        max_new_tokens=_max_new_tokens(trial),
        gold=trial.labelled,
    )


def soft_label_stage(
    trial: Trial, teacher: TeacherOutcome, meter: ComputeMeter, student_params: int
) -> tuple[list[Item], list[Soft], CacheStatus]:
    """Soft targets for as many unlabelled examples as the remaining money covers."""
    cfg = trial.cfg
    order = trial.pool_order[: cfg.max_unlabelled]  # None: the whole pool
    items = trial.family.encode(take(trial.data.train, order), with_targets=False)
    if not items:
        return [], [], "off"
    bs, max_new = cfg.batch_size, _max_new_tokens(trial)
    n = _pool_size(trial, teacher, meter, items, student_params)
    if n == 0:
        return [], [], "off"
    if meter.mode == "paper":
        meter.charge_usd(meter.distillation_stage_usd(n))  # the whole stage, before it starts
    # A window's soft targets depend on the teacher and the window alone (not on how many
    # follow, so not on max_unlabelled), nor on any price.
    key = content_key(
        "soft",
        {
            "teacher": teacher.key,
            "pool": len(trial.pool_order),
            "batch_size": bs,
            "top_k": getattr(trial.family, "top_k", 0),
        },
    )
    with trial.cache.lock(key):
        entry = trial.cache.get(key)
        stored: list[Soft] = []
        # Per whole window: what computing it took (re-priced at this trial's price and meter).
        window_flops: list[float] = []
        window_seconds: list[float] = []
        if entry is not None:
            stored = torch.load(entry.path / "soft.pt", weights_only=False)
            window_flops = list(entry.meta["window_flops"])
            window_seconds = list(entry.meta["window_device_seconds"])
        n_windows = -(-n // bs)
        reuse = min(len(window_flops), n_windows if n % bs == 0 else n_windows - 1)
        for w, (flops, seconds) in enumerate(
            zip(window_flops[:reuse], window_seconds[:reuse], strict=True)
        ):
            if meter.reused_stage_usd(flops, seconds) > meter.remaining_usd + 1e-9:
                reuse = w  # priced higher here (measured elsewhere): stop, as a miss would
                break
            meter.charge_reused_stage(flops, seconds)
        softs = stored[: reuse * bs]
        status: CacheStatus = "hit" if reuse * bs >= n else ("partial" if reuse else "miss")
        for w in range(reuse, n_windows):
            window = items[w * bs : min((w + 1) * bs, n)]
            before_flops, before_seconds = meter.flops, meter.measured_device_seconds
            try:
                new = soft_targets(
                    teacher.model,
                    trial.family,
                    window,
                    batch_size=bs,
                    device=trial.device,
                    meter=meter,
                    max_new_tokens=max_new,
                )
            except BudgetExhausted:
                break
            softs += new
            if len(window) == bs:
                window_flops.append(meter.flops - before_flops)
                window_seconds.append(meter.measured_device_seconds - before_seconds)
        if trial.cache.enabled and len(window_flops) * bs > len(stored):
            full = softs[: len(window_flops) * bs]
            meta = {"window_flops": window_flops, "window_device_seconds": window_seconds}
            with trial.cache.writer(key, meta) as folder:
                torch.save(full, folder / "soft.pt")
    if not trial.cache.enabled:
        status = "off"
    return items[: len(softs)], softs, status


def student_stage(
    trial: Trial,
    student: Any,
    soft_items: list[Item],
    softs: list[Soft],
    meter: ComputeMeter,
    student_meter: ComputeMeter | None,
) -> bool:
    """Distil when there are soft targets; otherwise, or when the money left could not
    pay one distillation step, learn from the gold labels alone. False: the meter cut the
    distillation short (to nothing, in the second case)."""
    cfg = trial.cfg
    if softs:
        epochs, flops_before = cfg.distill_epochs_for(len(softs)), meter.flops
        finished = distill(
            student,
            trial.family,
            soft_items,
            softs,
            trial.train_settings(epochs, cfg.student_lr),
            temperature=cfg.temperature,
            meter=meter,
            gold=trial.labelled,
            gold_weight=cfg.gold_weight,
            on_epoch=trial.report_hook("distill", student, epochs),
            on_step=trial.progress("distill"),
        )
        if finished or meter.flops > flops_before:
            return finished  # cut short by the meter: its partial schedule is the result
    if trial.labelled:
        # Annotation only, or a teacher that could not be had: the student learns from gold.
        fit(
            student,
            trial.family,
            trial.labelled,
            trial.train_settings(cfg.student_epochs, cfg.student_lr),
            meter=student_meter,
            on_epoch=trial.report_hook("annotate", student, cfg.student_epochs),
            on_step=trial.progress("annotate"),
        )
    return not softs  # soft targets that not one step could use: cut short too
