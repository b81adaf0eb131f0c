"""Real trials on the shipped data (tests/data), with torch and transformers alone: the
`trial` section (one distillation trial in bf16, with stage timings) and the `meter`
section (the `measured` meter against the `estimated` one; a calibrated profile)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from . import ROOT
from .device import cuda, device, hardware_profile, tiny_mode
from .figures import fmt, record

DATA = ROOT / "tests" / "data"

TRIALS: dict[str, dict[str, Any]] = {
    # BERT-base shape, random init, teaching a 2-layer student on FEVER claims.
    "encoder": {
        "task": "fever",
        "teacher": "bert-offline-base",
        "student": "bert-offline-student",
        "teacher_lr": 1e-4,
        "student_lr": 1e-3,
    },
    # T5 v1.1 base shape, random init, teaching the 2-layer T5 on NQ questions (generation).
    "seq2seq": {
        "task": "nq",
        "teacher": "t5-offline-base",
        "student": "t5-offline-student",
        "teacher_lr": 3e-4,
        "student_lr": 1e-3,
    },
}
TINY_MODELS = {
    "encoder": ("bert-offline-student", "bert-offline-student"),
    "seq2seq": ("t5-offline-student", "t5-offline-student"),
}
STAGES = ("prepare", "teacher", "soft_labels", "student", "evaluate")


def trial_fields(family: str, tiny: bool, **overrides: Any) -> dict[str, Any]:
    """One distillation trial on the shipped data: 500 labels teach, 500 are distilled."""
    fields: dict[str, Any] = {
        **TRIALS[family],
        "family": family,
        "data_dir": str(DATA),
        "budget_usd": 10.0,
        "n_seed_labels": 500,
        "compute_fraction": 1.0,  # every new dollar on compute: no labels bought
        "teacher_epochs": 3,
        "distill_epochs": 3,
        "batch_size": 32,
        "max_unlabelled": 500,
        "max_eval_examples": 300,
        "hardware": hardware_profile(),
        "usd_per_device_hour": 1.875,
    }
    if tiny:
        teacher, student = TINY_MODELS[family]
        fields.update(
            teacher=teacher,
            student=student,
            n_seed_labels=64,
            teacher_epochs=1,
            distill_epochs=1,
            max_unlabelled=32,
            max_eval_examples=32,
            batch_size=16,
            hardware="cpu",
            usd_per_device_hour=20.0,
            n_threads=1,
        )
        if family == "seq2seq":
            fields["task"] = "fever"  # 4-token targets: generation stays short on a CPU
    fields.update(overrides)
    return fields


def cmd_trial(args: argparse.Namespace) -> None:
    from objectives.distill_or_annotate import run_trial
    from objectives.trial_config import trial_config

    tiny = tiny_mode(args)
    fields = trial_fields(args.family, tiny)
    precision = "bf16 autocast" if cuda() and torch.cuda.is_bf16_supported() else "fp32"
    print(
        f"{args.family}: teacher {fields['teacher']} -> student {fields['student']} on "
        f"{fields['task']} (tests/data), {fields['n_seed_labels']} labels, up to "
        f"{fields['max_unlabelled']} distilled, {precision} on {device()}",
        flush=True,
    )
    started = time.perf_counter()
    result = run_trial(trial_config(fields))
    wall = time.perf_counter() - started
    stages = {s: result.details.get(f"seconds_{s}", 0.0) for s in STAGES}
    for stage, seconds in stages.items():
        print(f"  {stage:<12} {seconds:7.2f} s")
    print(
        f"  total        {wall:7.2f} s; teacher {result.teacher_status}, dev {result.metric}: "
        f"teacher {fmt(result.teacher_score, '{:.4f}')}, student {result.score:.4f}; "
        f"{result.n_unlabelled} soft labels; meter {result.details['charged_flops']:.3g} FLOPs"
    )
    if cuda():
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    record(
        args.summary,
        f"trial {args.family}",
        teacher=fields["teacher"],
        status=result.teacher_status,
        score=result.score,
        wall_seconds=wall,
        **{f"seconds_{s}": v for s, v in stages.items()},
    )


def cmd_meter(args: argparse.Namespace) -> None:
    from objectives.distill_or_annotate import run_trial
    from objectives.meter import get_profile
    from objectives.trial_config import trial_config

    tiny = tiny_mode(args)
    profile = get_profile(hardware_profile())
    sizes = [("encoder", 64, 32)] if tiny else [(f, n, n) for f in TRIALS for n in (128, 400)]
    print(
        f"real trials with the `measured` meter (each step timed, the GPU synchronised), every "
        f"stage charged; `estimated` = the same steps' FLOPs / the `{profile.name}` profile's "
        f"{profile.flops_per_second:.3g} FLOP/s",
        flush=True,
    )
    rows = []
    for family, labels, unlabelled in sizes:
        fields = trial_fields(
            family,
            tiny,
            n_seed_labels=labels,
            max_unlabelled=unlabelled,
            meter="measured",
            charge_student_training=True,
            budget_usd=1000.0,
            max_eval_examples=32,
            n_reports=0,
        )
        result = run_trial(trial_config(fields))
        flops = result.details["charged_flops"]
        estimated = flops / profile.flops_per_second
        rows.append((family, flops, result.device_seconds, estimated / result.device_seconds))
        print(
            f"  {family:<8} teacher {fields['teacher']:<20} labels {labels:>4} unlabelled "
            f"{unlabelled:>4}: estimated {estimated:8.3f} s, measured "
            f"{result.device_seconds:8.3f} s, ratio {rows[-1][3]:.2f}",
            flush=True,
        )
    ratios = [r[3] for r in rows]
    spread = max(ratios) / min(ratios)
    print(
        f"  estimated / measured: min {min(ratios):.2f}, max {max(ratios):.2f}, spread {spread:.2f}"
    )
    calibrated: dict[str, float] = {}
    for family in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == family]
        calibrated[family] = sum(r[1] for r in mine) / sum(r[2] for r in mine)
    overall = sum(r[1] for r in rows) / sum(r[2] for r in rows)
    off = not 0.67 < overall / profile.flops_per_second < 1.5
    verdict = "wide: calibrate" if spread > 1.5 or off else "narrow"
    print(
        f"  calibrated ({verdict}): HardwareProfile('{profile.name}-measured', "
        f"peak_flops={profile.peak_flops:.3g}, utilisation={overall / profile.peak_flops:.3f}) "
        "= "
        + f"{overall:.3g} FLOP/s; per family: "
        + ", ".join(f"{k} {v:.3g} FLOP/s" for k, v in calibrated.items())
    )
    record(
        args.summary,
        "meter",
        spread=spread,
        min_ratio=min(ratios),
        max_ratio=max(ratios),
        calibrated_flops=overall,
        **{f"calibrated_{k}": v for k, v in calibrated.items()},
    )
