"""The search spaces are Optuna's: without it (the GPU check's machine) this folder skips."""

import pytest

pytest.importorskip("optuna")
