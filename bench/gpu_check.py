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
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The sections live in bench/gpu_sections/, found next to this script (Python puts a
# script's own folder on sys.path), one module per kind of work.
from gpu_sections.delegated import cmd_tests, cmd_throughput  # noqa: E402
from gpu_sections.device import cmd_env  # noqa: E402
from gpu_sections.mfu import cmd_mfu  # noqa: E402
from gpu_sections.report import cmd_failed, cmd_summary  # noqa: E402
from gpu_sections.trials import TRIALS, cmd_meter, cmd_trial  # noqa: E402


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
