"""A tiny real task (generated sentences whose label a small model learns in seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

GOOD = ["great", "lovely", "superb", "fine", "brilliant", "happy", "wonderful", "nice"]
BAD = ["awful", "terrible", "boring", "poor", "dreadful", "sad", "horrible", "weak"]
FILLER = ["the", "movie", "was", "plot", "acting", "and", "really", "quite", "a", "film"]


def _rows(n: int, rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = [*rng.sample(FILLER, 4), rng.choice(GOOD if label == "pos" else BAD)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classification task file over 240/40/40 generated rows."""
    root = tmp_path_factory.mktemp("tiny_task")
    rng = random.Random(0)
    for split, n in (("train", 240), ("dev", 40), ("test", 40)):
        with (root / f"{split}.jsonl").open("w") as handle:
            for row in _rows(n, rng):
                handle.write(json.dumps(row) + "\n")
    task = root / "tiny.toml"
    task.write_text(
        'name = "tiny"\nmetric = "accuracy"\nusd_per_label = 0.1\ninput_columns = ["text"]\n'
        'target_column = "label"\nlabels = ["neg", "pos"]\nmax_source_tokens = 16\n'
        'max_target_tokens = 4\n[files]\ntrain = "train.jsonl"\ndev = "dev.jsonl"\n'
        'test = "test.jsonl"\n'
    )
    return task
