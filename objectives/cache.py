"""The stage cache: fine-tuned teachers and their soft labels, shared between trials.

Entries are keyed by a content hash of everything that determines them, and of nothing
else (no price, hardware profile or meter), written into a temporary sibling and renamed
into place (so a killed writer leaves nothing a reader would take), and built under an
exclusive file lock (so two trials that need the same stage at once pay for it once: the
second waits, then reads). Each entry records what building it took (FLOPs and real
device-seconds), not what it cost: a trial that reuses it is charged the full standalone
cost at its own price and meter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def content_key(kind: str, fields: dict[str, Any]) -> str:
    """A stable hash of a stage's inputs (JSON with sorted keys)."""
    blob = json.dumps({"kind": kind, **fields}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    meta: dict[str, Any]


class StageCache:
    """A folder of finished stages. `root=None` disables caching (every lookup misses)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key

    def get(self, key: str) -> CacheEntry | None:
        """A finished entry, or None. Only renamed-into-place entries are ever seen."""
        if self.root is None:
            return None
        path = self._path(key)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            return None
        return CacheEntry(path, json.loads(meta_file.read_text()))

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the build lock of `key`; a second trial blocks here until the first is done."""
        if self.root is None:
            yield
            return
        with open(self.root / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def writer(self, key: str, meta: dict[str, Any]) -> Iterator[Path]:
        """Yield a temporary folder to fill; on success it becomes the entry, atomically.

        `meta` may be updated by the caller inside the block; it is written last.
        """
        if self.root is None:
            with tempfile.TemporaryDirectory() as scratch:
                yield Path(scratch)
            return
        final = self._path(key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=self.root))
        try:
            yield tmp
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
            if final.exists():  # replacing a smaller entry (soft labels grow by prefix)
                old = final.with_name(f".{key}.old-{os.getpid()}")
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def examples_fingerprint(examples: Sequence[Any]) -> str:
    """A short hash of examples' content: a stage keyed by it is shared whatever path the
    data was read from, and rebuilt when the rows change (not only their number)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(repr(example).encode())  # a frozen dataclass: its fields, in order
        digest.update(b"\0")
    return digest.hexdigest()[:24]
