"""The sections of the GPU check (`bench/gpu_check.py`), one module per kind of work:

device     what the device is (bf16 peak, meter profile, tiny mode) and the `env` section
figures    the summary file each section appends its key figures to
delegated  the sections that run another program: `tests` (pytest), `throughput`
trials     real trials: the `trial` and `meter` sections
mfu        teacher fine-tuning of a T5 built from a config: the `mfu` section
report     the `summary` and `failed` sections
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
