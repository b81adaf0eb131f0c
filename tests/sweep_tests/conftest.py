"""A Ray session shared by the sweep tests (start-up is 2-4 s), with a short temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The sweep layer needs Ray, MLflow and Optuna. The GPU check's machine has the trial layer
# alone (torch, transformers): there `pytest -m gpu` skips this folder instead of failing.
for _needed in ("ray", "mlflow", "optuna"):
    pytest.importorskip(_needed)

from sweep.config import SweepConfig  # noqa: E402


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    from sweep.engine.raystart import RAY_TMP
    from sweep.engine.tuner import _quiet

    _quiet()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=RAY_TMP,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


def synthetic_config(root: Path, **overrides: Any) -> SweepConfig:
    fields: dict[str, Any] = {
        "name": "syn",
        "task": "fever",
        "budget_usd": 300.0,
        "n_seed_labels": 1000,
        "n_trials": 5,
        "objective": "synthetic",
        "root": str(root),
        **overrides,
    }
    return SweepConfig(**fields)
