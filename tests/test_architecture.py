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


# Inside `sweep`, each layer imports only the layers before it (function-level imports
# included): values, then the stores, then the analysis that decides, then the Ray engine
# that runs trials and pilots, then the command line on top.
SWEEP_LAYERS = ("config", "tracking", "decide", "engine", "cli")
SWEEP_LEAVES = ("sweep.tables",)  # imports nothing of `sweep`; any layer may use it


def _sweep_imports(path: Path) -> set[str]:
    """The `sweep.*` modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sweep.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sweep":
                found |= {f"sweep.{a.name}" for a in node.names}
            elif node.module.startswith("sweep."):
                found.add(node.module)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SWEEP_LAYERS else None


def test_every_sweep_module_sits_in_a_layer() -> None:
    loose = {
        _module_name(p)
        for p in (ROOT / "sweep").rglob("*.py")
        if _layer(_module_name(p)) is None
        and _module_name(p) not in {"sweep", "sweep.__main__", *SWEEP_LEAVES}
    }
    assert not loose, f"modules outside the layers {SWEEP_LAYERS}: {sorted(loose)}"


@pytest.mark.parametrize("layer", SWEEP_LAYERS)
def test_sweep_layers_import_only_those_below(layer: str) -> None:
    allowed = set(SWEEP_LAYERS[: SWEEP_LAYERS.index(layer) + 1])
    bad = {
        (_module_name(path), imported)
        for path in (ROOT / "sweep" / layer).rglob("*.py")
        for imported in _sweep_imports(path)
        if imported not in SWEEP_LEAVES and _layer(imported) not in allowed
    }
    assert not bad, f"sweep.{layer} reaches up or out: {sorted(bad)}"


def test_sweep_modules_import_no_cycle() -> None:
    graph = {_module_name(p): _sweep_imports(p) for p in (ROOT / "sweep").rglob("*.py")}
    graph.pop("sweep")  # the API's lazy re-exports point down at everything
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, set()):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_light_commands_import_no_torch_ray_or_mlflow() -> None:
    code = (
        "import sys, sweep, sweep.cli.main, objectives, search_spaces, cluster;"
        "print(sorted(m for m in ('torch','transformers','ray','mlflow','optuna') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_queries_import_neither_ray_nor_torch() -> None:
    # `sweep best` and `sweep report` read MLflow only: no Ray start, no torch import.
    code = (
        "import sys, sweep.tracking.results, sweep.decide.plots, sweep.decide.summary;"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_modules_and_functions_stay_readable() -> None:
    """A module does one job (500 lines at most) and a function reads on one screen (80 lines
    at most): past that, split by responsibility, not into grab-bag helpers."""
    for folder in (*PACKAGES, "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            source = path.read_text()
            assert len(source.splitlines()) <= 500, path
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    assert length <= 80, f"{path}:{node.lineno} {node.name} has {length} lines"
