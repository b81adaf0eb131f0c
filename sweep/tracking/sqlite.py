"""SQLite settings shared by both local stores (MLflow's and Optuna's): the write-ahead log,
the lock around a store's creation, the check that a store is whole before anything reads or
writes it, and reading a store in a folder this process may not write."""

from __future__ import annotations

import os
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


def read_only(path: Path) -> bool:
    """Whether the folder holding a store cannot be written here (a read-only mount, another
    user's results): SQLite could not make the write-ahead log's `-wal` and `-shm` files
    there, so the store is read from a private copy (`openable`) and never written."""
    return path.exists() and not os.access(path.parent, os.W_OK)


_COPIES: dict[Path, Path] = {}  # a read-only store -> this process's copy of it


def openable(path: Path) -> Path:
    """The file SQLite opens for the store at `path`: itself, or where its folder cannot be
    written, a copy of it and of its write-ahead log (what the log holds is read too) in a
    temporary folder this process removes when it ends."""
    if not read_only(path):
        return path
    if path not in _COPIES:
        import atexit
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="doa-store-"))
        atexit.register(shutil.rmtree, folder, True)
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copyfile(source, folder / source.name)
        _COPIES[path] = folder / path.name
    return _COPIES[path]


def sqlite_uri(path: Path) -> str:
    """The URI SQLAlchemy opens a local store by (see `openable`)."""
    return f"sqlite:///{openable(path)}"


# Stores found whole by this process: each is checked once, not at every opening.
_WHOLE: set[Path] = set()


def check_store(path: Path | None, what: str, table: str) -> None:
    """Refuse, in one line, a local store that exists but is not a whole store of its kind
    (empty, truncated, overwritten, another program's database): no command reads or writes
    it (a store MLflow or Optuna could not read would otherwise get a new schema written into
    it, or a traceback). `what` names it ("MLflow store"), `table` is one of its kind's.
    Call it where the store's creation lock is held: a store being created is whole."""
    import sqlite3

    if path is None or ":memory:" in str(path) or not path.exists() or path in _WHOLE:
        return
    hint = (
        "move it away (a new store is then made) or restore it from a backup; "
        "`sweep doctor` checks the stores"
    )
    if path.is_dir() or path.stat().st_size == 0:
        kind = "a folder" if path.is_dir() else "empty (0 bytes)"
        raise ValueError(f"The {what} {path} is {kind}, not a store; {hint}.")
    try:
        connection = sqlite3.connect(f"file:{openable(path)}?mode=ro", uri=True)
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise ValueError(f"The {what} {path} is damaged ({exc}); {hint}.") from None
    if not check or check[0] != "ok":
        raise ValueError(f"The {what} {path} is damaged ({check[0] if check else '?'}); {hint}.")
    if table not in tables:
        raise ValueError(f"The {what} {path} is a database without a {table!r} table; {hint}.")
    _WHOLE.add(path)
