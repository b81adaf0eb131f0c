"""A trial's inputs and outputs as plain values: light to import, easy to ship to workers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from objectives.baselines import learned_nothing, standing_line
from objectives.budget import (
    PAPER_USD_PER_DEVICE_HOUR,
    Allocation,
    PriceBook,
    allocate,
    allocate_counts,
)
from objectives.meter import MeterMode, get_profile
from objectives.tasks import TaskSpec, get_task, load_task_file, with_teacher_fixed_usd

Report = Callable[[dict[str, Any]], None]
# What became of a trial's teacher, and whether a stage came from the stage cache.
TeacherStatus = Literal["not_needed", "no_labels", "unaffordable", "unfinished", "finished"]
CacheStatus = Literal["hit", "partial", "miss", "off"]
FamilyName = Literal["auto", "encoder", "seq2seq"]


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial depends on; plain values only, so it travels to any worker.

    Epochs and learning rates default to the paper's (20 teacher and student epochs, 50
    distillation epochs, lr 3e-5, batch 32); small offline models need larger rates.
    """

    task: str
    budget_usd: float
    n_seed_labels: int
    compute_fraction: float
    seed: int = 0
    family: FamilyName = "auto"
    teacher: str | None = None
    student: str | None = None
    temperature: float = 2.0
    gold_weight: float = 0.0
    teacher_epochs: int = 20
    student_epochs: int = 20
    distill_epochs: int = 50
    # A small pool distils for more epochs, up to this many steps in all: at a few epochs a
    # pool of 80 gives 15 steps and the student collapses to one class (the paper's 50
    # epochs never run that short).
    min_distill_steps: int = 0
    teacher_lr: float = 3e-5
    student_lr: float = 3e-5
    batch_size: int = 32
    max_unlabelled: int | None = None
    # Grid mode (the paper's labelled x unlabelled grid): buy exactly this many labels and
    # give the rest of `budget_usd` to compute; `compute_fraction` is then ignored.
    n_labels: int | None = None
    max_eval_examples: int | None = None  # None: score every dev/test row, as the paper did
    n_reports: int = 5
    score_test: bool = True  # False: the dev score alone (pilots, which decide on dev)
    usd_per_label: float | None = None  # None: the task's own price
    usd_per_device_hour: float = PAPER_USD_PER_DEVICE_HOUR
    charge_student_training: bool = False
    # The paper meter's fixed teacher cost a; None: the task's cost model's (for the paper's
    # tasks $3, an assumption: the paper says only "a few dollars").
    a_usd: float | None = None
    meter: MeterMode = "estimated"
    hardware: str = "a100"
    n_devices: int = 1
    n_threads: int | None = None
    data_dir: str | None = None
    task_file: str | None = None
    cache_dir: str | None = None
    # Where to write the student's dev and test predictions (JSON), so that trials can be
    # compared row by row (bench/paper_table.py); None: not kept.
    predictions_file: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.compute_fraction <= 1.0:
            raise ValueError(
                "`0 <= compute_fraction <= 1` must hold, but got "
                f"compute_fraction={self.compute_fraction!r}."
            )
        if self.family not in ("auto", "encoder", "seq2seq"):
            raise ValueError(f"Unknown family={self.family!r}; valid: auto, encoder, seq2seq.")
        if not self.temperature > 0:
            raise ValueError(f"`temperature > 0` must hold, but got {self.temperature!r}.")
        if not 0.0 <= self.gold_weight < 1.0:
            raise ValueError(
                f"`0 <= gold_weight < 1` must hold, but got gold_weight={self.gold_weight!r}."
            )
        for name in ("teacher_epochs", "student_epochs", "distill_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name} >= 1` must hold, but got {name}={getattr(self, name)}.")
        if self.n_reports < 0:
            raise ValueError(f"`n_reports >= 0` must hold, but got n_reports={self.n_reports}.")
        for name, least in (("max_unlabelled", 0), ("max_eval_examples", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise ValueError(
                    f"`{name} >= {least}` must hold (or unset: no cap), but got {name}={value}."
                )
        if self.min_distill_steps < 0:
            raise ValueError(
                f"`min_distill_steps >= 0` must hold, but got min_distill_steps="
                f"{self.min_distill_steps}."
            )
        get_profile(self.hardware)
        if self.a_usd is not None and not (math.isfinite(self.a_usd) and self.a_usd >= 0):
            raise ValueError(f"`a_usd >= 0` must hold, but got a_usd={self.a_usd!r}.")

    def distill_epochs_for(self, n_unlabelled: int) -> int:
        """`distill_epochs`, or more for a pool too small to give `min_distill_steps`."""
        steps_per_epoch = -(-n_unlabelled // self.batch_size)
        if not steps_per_epoch:
            return self.distill_epochs
        return max(self.distill_epochs, -(-self.min_distill_steps // steps_per_epoch))

    def task_spec(self) -> TaskSpec:
        """The task, with `a_usd` in its cost model when set."""
        if self.task_file:
            spec = load_task_file(self.task_file)
            spec = get_task(self.task, {spec.name: spec})
        else:
            spec = get_task(self.task)
        return with_teacher_fixed_usd(spec, self.a_usd)

    def resolved_family(self, spec: TaskSpec) -> Literal["encoder", "seq2seq"]:
        if self.family != "auto":
            if self.family == "encoder" and spec.kind != "classification":
                raise ValueError(
                    f"family='encoder' needs a classification task, but {spec.name!r} is "
                    f"{spec.kind}; use family='seq2seq'."
                )
            return self.family
        return "encoder" if spec.kind == "classification" else "seq2seq"

    def allocation(self, spec: TaskSpec) -> Allocation:
        """How this trial's budget is split (every objective spends it this way)."""
        prices = self.prices(spec)
        if self.n_labels is None:
            return allocate(
                spec.name, self.budget_usd, self.compute_fraction, prices, self.n_seed_labels
            )
        annotation_usd = self.n_labels * prices.label_price(spec.name)
        if annotation_usd > self.budget_usd + 1e-9:
            raise ValueError(
                f"`n_labels * usd_per_label <= budget_usd` must hold, but {self.n_labels} labels "
                f"cost ${annotation_usd:g} and budget_usd={self.budget_usd:g}."
            )
        return allocate_counts(
            spec.name,
            self.n_labels,
            max(0.0, self.budget_usd - annotation_usd),
            prices,
            self.n_seed_labels,
        )

    def prices(self, spec: TaskSpec) -> PriceBook:
        return PriceBook(
            usd_per_label={spec.name: self.usd_per_label or spec.usd_per_label},
            usd_per_device_hour=self.usd_per_device_hour,
            charge_student_training=self.charge_student_training,
        )


@dataclass(frozen=True)
class TrialResult:
    """What a trial reports. Two ledgers:

    - `practitioner_usd`: what this allocation costs someone running it from scratch: the
      labels plus every charged compute step (cached stages charged at their build cost).
    - `sweep_spent_usd`: what the sweep really spent on compute for this trial: real
      device-seconds of the trial process (cache hits make it smaller), priced per hour.
    """

    task: str
    budget_usd: float
    compute_fraction: float
    seed: int
    strategy: str
    metric: str
    score: float
    test_score: float | None
    teacher_score: float | None
    teacher_status: TeacherStatus
    n_seed_labels: int
    n_new_labels: int
    n_labels_used: int
    n_unlabelled: int
    annotation_usd: float
    compute_usd: float
    compute_spent_usd: float
    unspent_usd: float
    device_seconds: float
    practitioner_usd: float
    sweep_device_seconds: float
    sweep_spent_usd: float
    teacher_cache: CacheStatus
    soft_cache: CacheStatus
    details: Mapping[str, float] = field(default_factory=dict)
    # The score's 90 % interval: a bootstrap over dev rows (objectives.metrics), or a
    # stand-in's noise model; None where the objective has none.
    score_low: float | None = None
    score_high: float | None = None
    # Against the task's trivial predictor on the same dev rows (`objectives.baselines`):
    # its score, the student's and the teacher's paired margins over it with their 90 %
    # intervals, each model's most frequent prediction and its share of the rows, and which
    # models learned nothing ("student", "teacher", comma-separated). None or "": not known
    # (a stand-in objective, no teacher).
    trivial_score: float | None = None
    trivial_predictor: str = ""
    margin: float | None = None
    margin_low: float | None = None
    margin_high: float | None = None
    top_prediction: str = ""
    top_prediction_share: float | None = None
    teacher_margin: float | None = None
    teacher_margin_low: float | None = None
    teacher_margin_high: float | None = None
    teacher_top_prediction: str = ""
    teacher_top_prediction_share: float | None = None
    degenerate: str = ""

    @classmethod
    def from_allocation(
        cls,
        allocation: Allocation,
        *,
        compute_spent_usd: float,
        device_seconds: float,
        **outcome: Any,
    ) -> TrialResult:
        """A result whose money fields all derive from the allocation and the compute spent,
        so that every objective keeps the ledgers the same way."""
        return cls(
            task=allocation.task,
            budget_usd=allocation.budget_usd,
            compute_fraction=allocation.compute_fraction,
            strategy=allocation.strategy,
            n_seed_labels=allocation.n_seed_labels,
            n_new_labels=allocation.n_new_labels,
            annotation_usd=allocation.annotation_usd,
            compute_usd=allocation.compute_usd,
            compute_spent_usd=compute_spent_usd,
            unspent_usd=allocation.unspent_usd + allocation.compute_usd - compute_spent_usd,
            device_seconds=device_seconds,
            practitioner_usd=allocation.annotation_usd + compute_spent_usd,
            **outcome,
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["details"] = dict(self.details)
        return out


# Named bundles of TrialConfig fields. "paper" is the paper's training recipe; "cpu-small"
# fits a trial in about a minute on two CPU cores with the offline models (the demo's).
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "paper": {},
    "cpu-small": {
        "teacher_epochs": 6,
        "student_epochs": 10,
        "distill_epochs": 3,
        "min_distill_steps": 120,  # 3 epochs of the 640-example cap at batch 16
        "teacher_lr": 6e-4,
        "student_lr": 1e-3,
        "batch_size": 16,
        "max_unlabelled": 640,
        "max_eval_examples": 200,
        "hardware": "cpu",
        "n_threads": 2,
    },
}


def check_model_paths(cfg: TrialConfig) -> None:
    """A teacher or student named by a local path (absolute, or starting with ./, ../ or ~)
    must exist: refused before a sweep starts, not by each of its trials in turn. Other
    names are hub ids or offline names, which only loading can check."""
    for option in ("teacher", "student"):
        name = getattr(cfg, option)
        local = name is not None and name.startswith(("/", "./", "../", "~"))
        if local and not Path(name).expanduser().exists():
            raise ValueError(
                f"--{option} {name!r} is a path that does not exist; give a model folder that "
                "exists, a hub id that is cached or reachable, or an offline name."
            )


def trial_config(values: Mapping[str, Any], preset: str = "paper") -> TrialConfig:
    """Build a TrialConfig from a preset and field values, naming any unknown field."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset={preset!r}; valid: {', '.join(PRESETS)}.")
    names = {f.name for f in dataclasses.fields(TrialConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"Unknown trial field {unknown[0]!r}; valid fields: {', '.join(sorted(names))}."
        )
    return TrialConfig(**{**PRESETS[preset], **_task_recipe(values, preset), **values})


def _task_recipe(values: Mapping[str, Any], preset: str) -> Mapping[str, Any]:
    """The task's own values for `preset` (`TaskSpec.recipes`); none for a task not found
    here (TrialConfig names that error itself)."""
    try:
        if values.get("task_file"):
            own = load_task_file(values["task_file"])
            spec = get_task(str(values["task"]), {own.name: own})
        else:
            spec = get_task(str(values.get("task")))
    except (ValueError, OSError):
        return {}
    return spec.recipes.get(preset, {})


def format_result(r: Mapping[str, Any]) -> str:
    """A trial's result with both ledgers, for people."""
    teacher = "-" if r["teacher_score"] is None else f"{r['teacher_score']:.4f}"
    test = "-" if r["test_score"] is None else f"{r['test_score']:.4f}"
    low, high = r.get("score_low"), r.get("score_high")
    interval = "" if low is None or high is None else f" (90 % [{low:.4f}, {high:.4f}])"
    return "\n".join(
        [
            f"{r['task']}  budget ${r['budget_usd']:.2f}  compute fraction "
            f"{r['compute_fraction']:.3f}  seed {r['seed']}  ({r['strategy']})",
            f"  student {r['metric']}: dev {r['score']:.4f}{interval}  test {test}"
            f"   teacher dev {teacher}"
            f" ({r['teacher_status']}, cache {r['teacher_cache']})",
            f"  labels: {r['n_seed_labels']} seed + {r['n_new_labels']} bought"
            f" ({r['n_labels_used']} used); unlabelled distilled: {r['n_unlabelled']}"
            f" (soft-label cache {r['soft_cache']})",
            "  allocation ledger (what a practitioner pays):",
            f"    annotation ${r['annotation_usd']:.4f} + compute ${r['compute_spent_usd']:.4f}"
            f" of ${r['compute_usd']:.4f} = ${r['practitioner_usd']:.4f};"
            f" unspent ${r['unspent_usd']:.4f}",
            f"    {r['device_seconds'] / 3600:.4f} device-hours charged",
            "  sweep ledger (what this run really spent):",
            f"    {r['sweep_device_seconds']:.1f} device-seconds = ${r['sweep_spent_usd']:.4f}",
            *_baseline_lines(r),
        ]
    )


def _baseline_lines(r: Mapping[str, Any]) -> list[str]:
    """The trial against its trivial baseline; a model that learned nothing is named."""
    if r.get("trivial_score") is None:
        return []
    models = ["student", *(["teacher"] if r.get("teacher_margin") is not None else [])]
    return [
        f"  trivial baseline ({r.get('trivial_predictor') or '-'}): dev {r['trivial_score']:.4f}",
        *(
            ("  NOTHING LEARNED: " if who in learned_nothing(r.get("degenerate")) else "  ")
            + standing_line(who, r)
            for who in models
        ),
    ]
