"""Benchmark 7: the GPU path, measured on a real accelerator (the sections of
`bench/gpu_check.sh`).

Each subcommand is one section; each appends its key figures to a JSON Lines file
(`--summary`), and `summary` prints them as one block whose last line is the MFU of
teacher fine-tuning as a fraction of the GPU's bf16 dense peak. Everything runs with torch
and transformers alone (no Ray, MLflow, Optuna or datasets), offline, on models built from
configs and the data in tests/data. Without CUDA (or with `--tiny`) every section shrinks to
a CPU smoke run and says so.

    env         GPU name, versions, the bf16 peak used for MFU
    tests       pytest -m gpu
    trial       one real trial in bf16 (--family encoder|seq2seq), with stage timings
    throughput  bench/throughput.py on FEVER against transformers.Trainer
    mfu         teacher fine-tuning (our `fit`) of a T5 built from a config, MFU per variant
    meter       the `measured` meter against the `estimated` one; a calibrated profile
    summary     the key figures of every section

    bash bench/gpu_check.sh [--tiny]      # the whole check, under 8 minutes on an H100
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Dense bf16 peaks (no sparsity) from the vendors' data sheets, most specific name first.
# GPU_PEAK_TFLOPS overrides them for a card that is not listed.
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 836e12),
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
)
HARDWARE_FOR_NAME = (("H100", "h100"), ("H200", "h100"), ("A100", "a100"))


# --- shared helpers ----------------------------------------------------------------------


def cuda() -> bool:
    return torch.cuda.is_available()


def device() -> torch.device:
    return torch.device("cuda" if cuda() else "cpu")


def tiny_mode(args: argparse.Namespace) -> bool:
    """Tiny when asked, and always without CUDA (said once per section); tiny runs use one
    thread, as CI machines are shared and more threads than free cores only slow them."""
    if not cuda():
        print("no CUDA: tiny CPU run (the GPU-sized work is skipped)")
    tiny = bool(args.tiny) or not cuda()
    if tiny:
        torch.set_num_threads(1)
    return tiny


def peak_flops() -> tuple[float, str]:
    """(bf16 dense peak FLOP/s of this device, where the figure comes from)."""
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"]) * 1e12, "GPU_PEAK_TFLOPS"
    if not cuda():
        from objectives.meter import get_profile

        return get_profile("cpu").peak_flops, "the `cpu` hardware profile (no GPU)"
    name = torch.cuda.get_device_name()
    for fragment, flops in BF16_PEAK_FLOPS:
        if fragment in name:
            return flops, f"data sheet for {fragment}"
    return 989e12, f"unknown card {name!r}: H100 SXM's figure assumed"


def hardware_profile() -> str:
    """The meter's hardware profile closest to this device."""
    if not cuda():
        return "cpu"
    name = torch.cuda.get_device_name()
    return next((p for fragment, p in HARDWARE_FOR_NAME if fragment in name), "h100")


def record(summary: str | None, section: str, **figures: Any) -> None:
    """Append a section's key figures to the summary file (one JSON object a line)."""
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"section": section, **figures}) + "\n")


def synchronize() -> None:
    if cuda():
        torch.cuda.synchronize()


# --- env -----------------------------------------------------------------------------------


def cmd_env(args: argparse.Namespace) -> None:
    import platform

    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions["transformers"] = transformers.__version__
    try:
        import accelerate

        versions["accelerate"] = accelerate.__version__
    except ImportError:
        versions["accelerate"] = "absent"
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    name = torch.cuda.get_device_name() if cuda() else "none (CPU only)"
    if cuda():
        props = torch.cuda.get_device_properties(0)
        print(
            f"GPU: {name} x{torch.cuda.device_count()}, {props.total_memory / 2**30:.0f} GiB, "
            f"compute capability {props.major}.{props.minor}, CUDA {torch.version.cuda}, "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'NO'}"
        )
    else:
        print("GPU: none (CPU only): every section runs its tiny CPU mode")
    peak, source = peak_flops()
    print(f"bf16 dense peak used for MFU: {peak / 1e12:.3g} TFLOP/s ({source})")
    print(f"meter hardware profile: {hardware_profile()}")
    record(args.summary, "env", gpu=name, peak_tflops=peak / 1e12, **versions)


# --- tests ---------------------------------------------------------------------------------


def pytest_counts(last_line: str) -> dict[str, int]:
    """{'passed': 3, 'skipped': 2, ...} from pytest's last line."""
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed)", last_line)
    return {kind.rstrip("s") if kind == "errors" else kind: int(n) for n, kind in found}


def cmd_tests(args: argparse.Namespace) -> None:
    # Tiny runs collect only the file of CUDA tests (they skip on a CPU): collecting the
    # whole suite costs a CI run ten seconds for nothing.
    where = "tests/objectives_tests/test_gpu.py" if tiny_mode(args) else "tests"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", where, "-q", "-rs"]
    command += ["-p", "no:cacheprovider"]
    print("$", " ".join(command[2:]), flush=True)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(run.stdout[-6000:] + run.stderr[-2000:])
    lines = run.stdout.strip().splitlines()
    counts = pytest_counts(lines[-1] if lines else "")
    record(args.summary, "tests", exit_code=run.returncode, **counts)
    if run.returncode not in (0, 5):  # 5: nothing selected
        raise SystemExit(run.returncode)


# --- trial ---------------------------------------------------------------------------------

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
        f"teacher {_fmt(result.teacher_score, '{:.4f}')}, student {result.score:.4f}; "
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


# --- throughput ----------------------------------------------------------------------------


def cmd_throughput(args: argparse.Namespace) -> None:
    tiny = tiny_mode(args)
    command = [sys.executable, str(ROOT / "bench" / "throughput.py"), "--task", "fever"]
    if tiny:
        command += ["--tiny", "--model", "bert-offline-student", "--threads", "1"]
    else:
        # BERT-base shape on 960 claims: long enough to train, short enough for the budget.
        command += ["--model", "bert-offline-base", "--examples", "960", "--epochs", "3"]
        command += ["--lr", "1e-4", "--pseudo-examples", "256", "--trained-below", "0.9"]
    print("$", " ".join(command[1:]), flush=True)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(run.stdout + run.stderr[-3000:])

    # From the per-contender lines, which come before the script's loss checks: a run
    # whose losses disagree still reports its speeds.
    speeds = {
        (stage, name.strip()): float(rate)
        for stage, name, rate in re.findall(
            r"^  (fine-tuning|distillation) +(ours|Trainer(?: group_by_length)?) +"
            r"(\d+\.\d+) examples/s",
            run.stdout,
            flags=re.MULTILINE,
        )
    }

    def ours_over_trainer(stage: str) -> float | None:
        trainers = [v for (s, name), v in speeds.items() if s == stage and name != "ours"]
        ours = speeds.get((stage, "ours"))
        return ours / max(trainers) if ours and trainers else None

    pseudo = re.search(r"; ratio (\d+\.\d+)", run.stdout)
    record(
        args.summary,
        "throughput",
        fine_tuning=ours_over_trainer("fine-tuning"),
        distillation=ours_over_trainer("distillation"),
        pseudo_labels=float(pseudo.group(1)) if pseudo else None,
        exit_code=run.returncode,
    )
    if run.returncode:
        raise SystemExit(run.returncode)


# --- mfu -----------------------------------------------------------------------------------


def t5_from_config(name: str, vocab_size: int, on: torch.device) -> Any:
    """A T5 of an offline shape (objectives.models), built directly on `on` (fast on a GPU)."""
    from transformers import T5ForConditionalGeneration

    from objectives.models import offline_t5_config

    config = offline_t5_config(name, vocab_size, pad_id=0, eos_id=1)
    config.use_cache = False  # training: no key/value cache (it also made compile recompile)
    torch.manual_seed(0)
    with on:
        return T5ForConditionalGeneration(config)


def model_flops_per_step(model: Any, batch: int, source: int, target: int) -> float:
    """Training FLOPs of one step that the model really does: each parameter's matmul over
    the tokens it sees (encoder: source; decoder and head: target; cross-attention keys and
    values: source), plus attention scores, x3 for forward and backward (PaLM's MFU count)."""
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    per_sequence = 0.0
    for name, p in model.named_parameters():
        if id(p) in embeddings:
            continue
        cross_kv = "EncDecAttention.k." in name or "EncDecAttention.v." in name
        tokens = source if name.startswith("encoder.") or cross_kv else target
        per_sequence += 2.0 * p.numel() * tokens
    cfg = model.config
    inner = cfg.num_heads * cfg.d_kv
    per_sequence += cfg.num_layers * 4.0 * source * source * inner  # encoder self-attention
    per_sequence += cfg.num_decoder_layers * 4.0 * (target * target + target * source) * inner
    return 3.0 * per_sequence * batch


def _fixed_length_items(n: int, source: int, target: int, vocab: int) -> list[Any]:
    from objectives.families import Item

    generator = torch.Generator().manual_seed(0)
    # Ids from 2: 0 is padding, 1 the end; equal lengths, so every batch is B x (S + T).
    ids = torch.randint(2, vocab, (n, source + target), generator=generator).tolist()
    return [Item(row[:source], target_ids=tuple(row[source:])) for row in ids]


def _time_fit(model: Any, items: list[Any], batch: int, epochs: int) -> tuple[float, int]:
    """(seconds, steps) of our `fit` after its first epoch (the warm-up: CUDA kernels
    chosen, optimizer state allocated, anything compiled), synchronised at epoch ends."""
    from objectives.families import Seq2SeqFamily
    from objectives.models import train_bpe_tokenizer
    from objectives.tasks import get_task
    from objectives.train import fit

    # The items are token ids already: the tokenizer only names padding (0) and the end (1).
    family = Seq2SeqFamily(get_task("nq"), train_bpe_tokenizer(["warm up"] * 4))
    marks: list[float] = []

    def mark(epoch: int) -> None:
        synchronize()
        marks.append(time.perf_counter())

    fit(
        model,
        family,
        items,
        epochs=epochs,
        lr=1e-4,
        batch_size=batch,
        seed=0,
        device=device(),
        on_epoch=mark,
    )
    steps_per_epoch = -(-len(items) // batch)
    return marks[-1] - marks[0], steps_per_epoch * (epochs - 1)


def _compile_blocks(model: Any) -> None:
    """Compile each T5 block on its own (regional compilation): identical blocks share one
    compiled graph, so compiling costs a few graphs, not 48."""
    for stack in (model.encoder, model.decoder):
        for block in stack.block:
            block.compile()


def cmd_mfu(args: argparse.Namespace) -> None:
    from objectives.meter import step_flops
    from objectives.models import n_parameters

    tiny = tiny_mode(args)
    name = "t5-offline-student" if tiny else args.model
    batch, source, target = (4, 32, 8) if tiny else (args.batch, args.source, args.target)
    steps_per_epoch, epochs = (2, 2) if tiny else (5, 5)
    vocab = 4000 if tiny else 32128  # T5's vocabulary
    peak, source_of_peak = peak_flops()
    variants = ["autocast"] if tiny else args.variants.split(",")
    model = t5_from_config(name, vocab, device())
    n_params = n_parameters(model)
    meter_flops = step_flops("train", n_params, batch * (source + target))
    true_flops = model_flops_per_step(model, batch, source, target)
    print(
        f"{name}: {n_params / 1e6:.1f} M parameters (embeddings excluded), batch {batch} x "
        f"({source} source + {target} target tokens), our `fit` (fused AdamW); peak "
        f"{peak / 1e12:.3g} TFLOP/s ({source_of_peak})\n"
        f"FLOPs per step: meter's 6 x params x tokens {meter_flops:.3g}; model FLOPs "
        f"(per-token parameter use + attention) {true_flops:.3g}: the meter counts "
        f"{meter_flops / true_flops:.2f}x",
        flush=True,
    )
    items = _fixed_length_items(batch * steps_per_epoch, source, target, vocab)
    for variant in variants:
        if variant in ("bf16", "compile"):
            model.to(torch.bfloat16)  # bf16 weights and optimizer state: no fp32 master copy
        if variant == "compile":
            _compile_blocks(model)
        if cuda():
            torch.cuda.reset_peak_memory_stats()
        try:
            seconds, steps = _time_fit(model, items, batch, epochs)
        except torch.cuda.OutOfMemoryError:
            print(f"  {variant}: out of GPU memory at batch {batch}; lower --batch")
            continue
        step_s = seconds / steps
        mfu_meter = meter_flops / step_s / peak
        mfu_model = true_flops / step_s / peak
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda() else "n/a"
        print(
            f"  {variant:<9} {step_s * 1e3:7.1f} ms/step, "
            f"{batch * (source + target) / step_s:9.0f} tokens/s, MFU {mfu_model:6.1%} "
            f"(model FLOPs), {mfu_meter:6.1%} (meter's count); peak memory {memory}",
            flush=True,
        )
        record(
            args.summary,
            "mfu",
            variant=variant,
            model=name,
            mfu_model=mfu_model,
            mfu_meter=mfu_meter,
            ms_per_step=step_s * 1e3,
            tiny=tiny,
        )


# --- meter ---------------------------------------------------------------------------------


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


# --- summary -------------------------------------------------------------------------------


def _fmt(value: Any, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def cmd_summary(args: argparse.Namespace) -> None:
    rows = []
    if args.summary and Path(args.summary).is_file():
        rows = [json.loads(line) for line in Path(args.summary).read_text().splitlines() if line]
    by = {r["section"]: r for r in rows}
    lines = ["", "===== summary ====="]
    env = by.get("env", {})
    lines.append(
        f"GPU: {env.get('gpu', 'n/a')}; torch {env.get('torch', '?')}, transformers "
        f"{env.get('transformers', '?')}; "
        f"bf16 peak {_fmt(env.get('peak_tflops'), '{:.3g}')} TFLOP/s"
    )
    tests = by.get("tests", {})
    lines.append(
        "pytest -m gpu: "
        + ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "skipped", "error"))
        + f" (exit {tests.get('exit_code', 'n/a')})"
    )
    for family in TRIALS:
        t = by.get(f"trial {family}")
        if t is None:
            lines.append(f"trial {family}: n/a")
            continue
        stages = ", ".join(f"{s} {t[f'seconds_{s}']:.1f} s" for s in STAGES)
        lines.append(
            f"trial {family} ({t['teacher']}, {t['status']}): {stages}; score {t['score']:.3f}"
        )
    th = by.get("throughput", {})
    lines.append(
        f"throughput ours / Trainer: fine-tuning {_fmt(th.get('fine_tuning'))}, distillation "
        f"{_fmt(th.get('distillation'))}; pseudo-labels batched / one at a time "
        f"{_fmt(th.get('pseudo_labels'))}"
    )
    mfu = [r for r in rows if r["section"] == "mfu"]
    for r in mfu:
        lines.append(
            f"MFU {r['model']} {r['variant']}: {r['mfu_model']:.1%} (model FLOPs), "
            f"{r['mfu_meter']:.1%} (meter's count), {r['ms_per_step']:.0f} ms/step"
        )
    meter = by.get("meter", {})
    lines.append(
        f"meter estimated / measured: {_fmt(meter.get('min_ratio'))} to "
        f"{_fmt(meter.get('max_ratio'))}, spread {_fmt(meter.get('spread'))}; calibrated "
        f"{_fmt(meter.get('calibrated_flops'), '{:.3g}')} FLOP/s"
    )
    failed = [r["what"] for r in rows if r["section"] == "failed"]
    lines.append("failed sections: " + (", ".join(failed) if failed else "none"))
    best = max((r["mfu_model"] for r in mfu), default=0.0)
    where = "" if mfu and not mfu[0]["tiny"] else " (tiny CPU run: not a GPU figure)"
    lines.append(f"best MFU of teacher fine-tuning{where}, fraction of bf16 peak: {best:.4f}")
    print("\n".join(lines))
    if failed:
        raise SystemExit(1)


def cmd_failed(args: argparse.Namespace) -> None:
    record(args.summary, "failed", what=args.what)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", help="JSON Lines file the key figures go to")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized smoke run (CI)")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], None]] = {
        "env": cmd_env,
        "tests": cmd_tests,
        "trial": cmd_trial,
        "throughput": cmd_throughput,
        "mfu": cmd_mfu,
        "meter": cmd_meter,
        "summary": cmd_summary,
        "failed": cmd_failed,
    }
    parsers = {name: sub.add_parser(name) for name in commands}
    parsers["trial"].add_argument("--family", choices=tuple(TRIALS), required=True)
    parsers["mfu"].add_argument("--model", default="t5-offline-large")
    parsers["mfu"].add_argument("--batch", type=int, default=16)
    parsers["mfu"].add_argument("--source", type=int, default=512, help="source tokens")
    parsers["mfu"].add_argument("--target", type=int, default=128, help="target tokens")
    parsers["mfu"].add_argument(
        "--variants",
        default="autocast,bf16",
        help="autocast (fp32 weights, bf16 compute: the trials' path), bf16 (bf16 weights), "
        "compile (bf16 weights, each block compiled)",
    )
    parsers["failed"].add_argument("what")
    args = parser.parse_args()
    commands[args.command](args)


if __name__ == "__main__":
    main()
