"""Where a sweep's stores live: local files under a root folder, or a server's URI."""

from __future__ import annotations

import os
from pathlib import Path


def absolute_uri(uri: str) -> str:
    """A store URI whose local file, if any, is named by an absolute path."""
    path = store_path(uri)
    if path is None or path.is_absolute():
        return uri
    return f"sqlite:///{path.resolve()}" if uri.startswith("sqlite:///") else str(path.resolve())


def store_path(uri: str) -> Path | None:
    """The local file behind a store URI: a SQLite database or an Optuna journal file;
    None for a server or a database reached over the network."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return Path(uri) if "://" not in uri else None


def check_writable(uri: str, what: str, shown: str | None = None) -> None:
    """Refuse a store whose file could not be created or written, before anything is; the
    error names the option `what` with its value `shown` (`uri` unless given)."""
    path = store_path(uri)
    if path is None:
        return
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if (
        not folder.is_dir()
        or not os.access(folder, os.W_OK)
        or (path.exists() and not os.access(path, os.W_OK))
    ):
        raise ValueError(
            f"{what} {shown or uri!r} is not writable ({folder} is not a writable folder); "
            "choose a folder you can write to."
        )


def default_tracking(root: str) -> str:
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def default_storage(root: str) -> str:
    return f"sqlite:///{Path(root).resolve() / 'optuna.db'}"


def artifact_root(tracking_uri: str) -> str | None:
    """Where a local store keeps its runs' artifacts: beside the database, never MLflow's
    default `./mlruns` in whatever folder the command ran from (None: the server decides)."""
    path = store_path(tracking_uri)
    return None if path is None else (path.parent / "artifacts").resolve().as_uri()
