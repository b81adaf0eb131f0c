"""SQLite settings shared by both local stores (MLflow's and Optuna's)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fast_sqlite(engine: Any) -> None:
    """A SQLite store in write-ahead-log mode, synced at its checkpoints, not at every commit:
    a commit costs well under a millisecond instead of ~4 ms of fsyncs (a sweep commits some
    20 times a trial). A crashed process loses nothing, a power cut at most the last commits.
    WAL needs the writers on one machine, which SQLite stores need anyway (docs/failures.md)."""
    import sqlite3

    from sqlalchemy import event

    if engine.dialect.name != "sqlite" or getattr(engine, "doa_fast_sqlite", False):
        return

    def on_connect(connection: Any, _record: Any) -> None:
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # kept by the file once set
            connection.execute("PRAGMA synchronous=NORMAL")  # per connection
        except sqlite3.OperationalError:  # locked by another writer: this connection syncs
            pass

    event.listen(engine, "connect", on_connect)
    engine.doa_fast_sqlite = True
    engine.dispose()  # connections already pooled get the settings too


def new_sqlite(path: Any) -> None:
    """A new SQLite file already in WAL mode, so that its tables are created without fsyncs."""
    import sqlite3

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
    except (OSError, sqlite3.Error):  # the store's own error is the clearer one
        pass


@contextmanager
def store_lock(path: Path | None) -> Iterator[None]:
    """Held while a local SQLite store is opened: the first process to open a new store
    creates its tables (and stamps its schema version) alone, the others find it whole.
    Without it, two sweeps started at once on an empty root both create the tables, and one
    fails (`table ... already exists`, `UNIQUE constraint failed: alembic_version...`).

    An advisory `flock` on `<store>.lock` beside it: it serialises processes on one machine,
    as SQLite itself needs (docs/failures.md). Where the lock file cannot be made (a
    read-only folder, no `fcntl`), the store is opened without it."""
    if path is None or ":memory:" in str(path):
        yield
        return
    try:
        import fcntl

        handle = open(path.with_name(f"{path.name}.lock"), "a")  # noqa: SIM115  (closed below)
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
