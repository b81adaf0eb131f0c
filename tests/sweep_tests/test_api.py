"""The curated Python API (`import sweep`; its light import is tests/test_architecture.py's):
every name resolves, and the README's example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sweep

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_public_name_resolves_to_its_layer() -> None:
    for name in sweep.__all__:
        assert getattr(sweep, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'tuner'"):
        _ = sweep.tuner


@pytest.mark.slow
def test_the_readme_python_example_runs_as_printed(
    ray_session: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README shows one Python example"
    monkeypatch.chdir(tmp_path)  # its root="runs" is relative, as a user's would be
    exec(compile(blocks[0], "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    task, budget, fraction, score = lines[-1].split()
    assert (task, float(budget)) == ("fever", 30.0)
    assert 0.0 <= float(fraction) <= 1.0 and 0.0 < float(score) <= 1.0
    assert (tmp_path / "runs" / "mlflow.db").is_file()
