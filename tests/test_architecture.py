"""The dependency direction and the light start-up the design promises."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("objectives", "search_spaces", "cluster", "sweep")


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path), alias.name.split(".")[0]) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", ["objectives", "search_spaces", "cluster"])
def test_only_sweep_sits_on_top(package: str) -> None:
    others = set(PACKAGES) - {package}
    bad = {(f, m) for f, m in _imports(package) if m in others}
    assert not bad, f"{package} must not import {bad}"


def test_ray_and_mlflow_stay_in_sweep() -> None:
    for package in ("objectives", "search_spaces", "cluster"):
        assert not {m for _, m in _imports(package)} & {"ray", "mlflow"}, package


def test_light_commands_import_no_torch_ray_or_mlflow() -> None:
    code = (
        "import sys, sweep.cli, objectives, search_spaces, cluster;"
        "print(sorted(m for m in ('torch','transformers','ray','mlflow','optuna') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_queries_import_neither_ray_nor_torch() -> None:
    # `sweep best` and `sweep report` read MLflow only: no Ray start, no torch import.
    code = (
        "import sys, sweep.results, sweep.plots, sweep.tracking;"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_modules_and_functions_stay_readable() -> None:
    """A module does one job (about 500 lines at most) and a function reads on one screen
    (80 lines at most): past that, split by responsibility, not into grab-bag helpers."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            assert len(source.splitlines()) <= 550, path
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    assert length <= 80, f"{path}:{node.lineno} {node.name} has {length} lines"
