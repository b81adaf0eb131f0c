"""The embedded demo: a real sweep, offline, on BBC News with the pretrained MiniLM teacher.

Its compute price mirrors the paper's economics. In the paper, fine-tuning the teacher on
Stanceosaurus (same $0.364 per label, long inputs) cost $11.51 per 1,000 labelled examples:
$0.01151 per example, 3.2 % of the label's price. Here the teacher (MiniLM, 10.8 M
non-embedding parameters) fine-tunes 6 epochs on 128-token inputs:
6 x 10.8e6 x 128 x 6 = 4.98e10 FLOPs per labelled example, which the `cpu` profile
(9e10 FLOP/s, measured on this project's 2-core machines) runs in 0.553 device-seconds.
For that to cost $0.01151: 0.01151 / 0.553 x 3600 = $75 per device-hour.
"""

from __future__ import annotations

from sweep.config import SweepConfig

DEMO_USD_PER_DEVICE_HOUR = 75.0
DEMO_NAME = "demo-bbc_news"


def demo_config(root: str = "runs", n_trials: int = 6) -> SweepConfig:
    return SweepConfig(
        name=DEMO_NAME,
        task="bbc_news",
        budget_usd=8.0,
        n_seed_labels=30,
        n_trials=n_trials,
        preset="cpu-small",
        trial={"usd_per_device_hour": DEMO_USD_PER_DEVICE_HOUR, "usd_per_label": 0.364},
        concurrency=1,  # two 1-thread trials on 2 cores ran slower than one 2-thread trial
        cpus_per_trial=2.0,
        root=root,
    )
