"""The `summary` section, which prints every section's key figures as one block whose last
line is the MFU of teacher fine-tuning, and the `failed` one, which records a failed section."""

from __future__ import annotations

import argparse

from .figures import fmt, read_records, record
from .trials import STAGES, TRIALS


def cmd_summary(args: argparse.Namespace) -> None:
    rows = read_records(args.summary)
    by = {r["section"]: r for r in rows}
    lines = ["", "===== summary ====="]
    env = by.get("env", {})
    lines.append(
        f"GPU: {env.get('gpu', 'n/a')}; torch {env.get('torch', '?')}, transformers "
        f"{env.get('transformers', '?')}; "
        f"bf16 peak {fmt(env.get('peak_tflops'), '{:.3g}')} TFLOP/s"
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
        f"throughput ours / Trainer: fine-tuning {fmt(th.get('fine_tuning'))}, distillation "
        f"{fmt(th.get('distillation'))}; pseudo-labels batched / one at a time "
        f"{fmt(th.get('pseudo_labels'))}"
    )
    mfu = [r for r in rows if r["section"] == "mfu"]
    for r in mfu:
        lines.append(
            f"MFU {r['model']} {r['variant']}: {r['mfu_model']:.1%} (model FLOPs), "
            f"{r['mfu_meter']:.1%} (meter's count), {r['ms_per_step']:.0f} ms/step"
        )
    meter = by.get("meter", {})
    lines.append(
        f"meter estimated / measured: {fmt(meter.get('min_ratio'))} to "
        f"{fmt(meter.get('max_ratio'))}, spread {fmt(meter.get('spread'))}; calibrated "
        f"{fmt(meter.get('calibrated_flops'), '{:.3g}')} FLOP/s"
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
