"""A tiny real task (generated sentences whose label a small model learns in seconds)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

GOOD = ["great", "lovely", "superb", "fine", "brilliant", "happy", "wonderful", "nice"]
BAD = ["awful", "terrible", "boring", "poor", "dreadful", "sad", "horrible", "weak"]
FILLER = ["the", "movie", "was", "plot", "acting", "and", "really", "quite", "a", "film"]
# A recipe under which the tiny models learn the tiny task in a second or two on a CPU (the
# tests' cheaper recipes collapse to one class there).
LEARNS = {
    "teacher": "bert-offline-student",
    "student": "bert-offline-student",
    "teacher_epochs": 10,
    "student_epochs": 6,
    "distill_epochs": 10,
    "teacher_lr": 2e-3,
    "student_lr": 2e-3,
    "batch_size": 16,
    "hardware": "cpu",
    "n_threads": 1,
}


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


@pytest.fixture(scope="session")
def no_signal_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MRPC-style task file whose labels carry no signal: 70 % 'paraphrase', 30 %
    'different', drawn independently of the inputs (the tiny task's sentences), over
    240/100/40 rows. Nothing can beat predicting the majority class here."""
    root = tmp_path_factory.mktemp("no_signal_task")
    rng = random.Random(1)
    for split, n in (("train", 240), ("dev", 100), ("test", 40)):
        with (root / f"{split}.jsonl").open("w") as handle:
            for row in _rows(n, rng):
                label = "paraphrase" if rng.random() < 0.7 else "different"
                handle.write(json.dumps({"text": row["text"], "label": label}) + "\n")
    task = root / "mrpc.toml"
    task.write_text(
        'name = "mrpc"\nmetric = "accuracy"\nusd_per_label = 0.1\ninput_columns = ["text"]\n'
        'target_column = "label"\nlabels = ["different", "paraphrase"]\n'
        'max_source_tokens = 16\nmax_target_tokens = 4\n[files]\ntrain = "train.jsonl"\n'
        'dev = "dev.jsonl"\ntest = "test.jsonl"\n'
    )
    return task
