"""Benchmark 6: how well the FLOP-estimate meter predicts real compute.

Real trials of several sizes (labels x unlabelled examples, a task with long inputs and one
with short ones) run with the `measured` meter, which times every charged step, and with
every stage charged (teacher fine-tuning, soft labels, the student's training). The same
steps' FLOP counts give what the `estimated` meter would have charged on the `cpu`
profile. The baseline is the measurement: each trial's ratio is estimated / measured
device-seconds, and the last line is the spread of that ratio (max / min) across sizes.

    python bench/cost_model.py [--hardware cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# FEVER comes from the samples shipped for the tests unless DOA_DATA_DIR names others.
os.environ.setdefault("DOA_DATA_DIR", str(Path(__file__).resolve().parents[1] / "tests" / "data"))

from objectives.meter import get_profile
from objectives.trial_config import trial_config

# (task, labels, unlabelled): BBC News articles are cut at 128 tokens, FEVER claims are ~15.
# Every trial fine-tunes a teacher, soft-labels its pool and trains the student on both.
SIZES = tuple(
    (task, labels, unlabelled)
    for task in ("bbc_news", "fever")
    for labels in (32, 128)
    for unlabelled in (64, 640)
)
TINY = (("fever", 16, 32),)


def measure(
    task: str, labels: int, unlabelled: int, hardware: str, threads: int
) -> tuple[float, float]:
    """(estimated, measured) device-seconds of one trial's charged steps."""
    from objectives.distill_or_annotate import run_trial

    cfg = trial_config(
        {
            "task": task,
            "budget_usd": 1000.0 + labels,  # a grid point: the labels, then ample compute
            "n_seed_labels": 0,
            "compute_fraction": 0.5,
            "n_labels": labels,
            "max_unlabelled": unlabelled,
            "usd_per_label": 1.0,
            "meter": "measured",
            "charge_student_training": True,
            "hardware": hardware,
            "n_threads": threads,
            "max_eval_examples": 50,
        },
        "cpu-small",
    )
    result = run_trial(cfg)
    estimated = result.details["charged_flops"] / get_profile(hardware).flops_per_second
    return estimated, result.device_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="one small trial (CI)")
    args = parser.parse_args()
    ratios = []
    for task, labels, unlabelled in TINY if args.tiny else SIZES:
        estimated, measured = measure(task, labels, unlabelled, args.hardware, args.threads)
        ratios.append(estimated / measured)
        print(
            f"{task:<9} labels {labels:>4} unlabelled {unlabelled:>4}: estimated "
            f"{estimated:7.1f} s, measured {measured:7.1f} s, ratio {ratios[-1]:.2f}"
        )
    print(
        f"estimated / measured: mean {statistics.fmean(ratios):.2f}, min {min(ratios):.2f}, "
        f"max {max(ratios):.2f}"
    )
    print(
        f"spread of estimated / measured across sizes (max / min): {max(ratios) / min(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
