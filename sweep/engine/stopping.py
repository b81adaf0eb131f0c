"""How a sweep that stops early says so, in one line: the command that continues it (after
Ctrl-C, SIGTERM, a full disk or a trial that waited too long for the cluster), and what a
store's error means (no space left on the device that holds it)."""

from __future__ import annotations

import shlex
import traceback

from sweep.config import SweepConfig, store_path

# What SQLite, SQLAlchemy and the OS say when the device is full, whichever layer raised.
_NO_SPACE = ("database or disk is full", "No space left on device", "[Errno 28]")


def resume_command(cfg: SweepConfig) -> str:
    """The command that continues `cfg`'s sweep, complete: run as printed from any folder
    it finds the same stores (paths are absolute)."""
    words = ["sweep", "grid" if cfg.grid_labels else "run", "--name", cfg.name, "--resume"]
    words += ["--storage", cfg.storage] if cfg.storage else ["--root", cfg.root]
    if cfg.tracking_uri:
        words += ["--tracking-uri", cfg.tracking_uri]
    return shlex.join(words)


def interrupted(cfg: SweepConfig, kept: bool) -> str:
    """What an interrupted sweep says: how to go on, or that it left nothing."""
    if kept:
        return f"sweep {cfg.name!r} interrupted; continue it with `{resume_command(cfg)}`"
    return f"sweep {cfg.name!r} interrupted before its first trial; nothing was kept"


def no_space(text: str) -> bool:
    """Whether an error's text (a trial's, or a traceback) says the device is full."""
    return any(marker in text for marker in _NO_SPACE)


def _chain_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def full_store(cfg: SweepConfig, text: str) -> str:
    """The store a no-space error was writing, as the user named it: Optuna's or MLflow's
    (read off the traceback), else the folder of both."""
    optuna_at = text.rfind("/optuna/")
    mlflow_at = text.rfind("/mlflow/")
    if optuna_at < 0 and mlflow_at < 0:
        return cfg.root
    uri = cfg.optuna_storage if optuna_at > mlflow_at else cfg.tracking
    return str(store_path(uri) or uri)


def stopped_by_full_disk(cfg: SweepConfig, error: BaseException, kept: bool) -> ValueError | None:
    """The one-line error a sweep stopped by a full disk ends with (None: another error)."""
    text = _chain_text(error)
    if not no_space(text):
        return None
    then = f"continue it with `{resume_command(cfg)}`" if kept else "run it again"
    return ValueError(
        f"no space left on device while writing {full_store(cfg, text)}; sweep {cfg.name!r} "
        f"stopped: free some space, then {then}"
    )
