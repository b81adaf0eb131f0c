"""Config files and prices: the same fields as the command line, in TOML, and the price
book a command resolves from the task registry, the file and the command line."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from objectives.budget import PriceBook, parse_price_overrides
from objectives.tasks import BUILTIN_TASKS, TaskSpec, load_task_file

PRICE_FIELDS = ("usd_per_label", "usd_per_device_hour", "charge_student_training")


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """Read a TOML config; keys use the CLI's long option names with '_' for '-'."""
    if path is None:
        return {}
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--config {str(path)!r} is a folder; pass a TOML file.")
    if not path.is_file():
        raise ValueError(f"--config {str(path)!r} does not exist; pass a TOML file.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {str(path)!r} is not valid TOML: {exc}.") from None


def price_book(
    file_prices: Mapping[str, Any] | None = None,
    cli_prices: list[str] | None = None,
    usd_per_device_hour: float | None = None,
    charge_student_training: bool | None = None,
    tasks: Mapping[str, TaskSpec] | None = None,
) -> PriceBook:
    """The paper's price book, with each task's own price, then the config file's
    `[prices]` table, then the command line on top."""
    specs = {**BUILTIN_TASKS, **(tasks or {})}
    base = PriceBook().with_overrides(
        usd_per_label={name: spec.usd_per_label for name, spec in specs.items()}
    )
    file_prices = dict(file_prices or {})
    unknown = sorted(set(file_prices) - set(PRICE_FIELDS))
    if unknown:
        raise ValueError(
            f"Unknown key {unknown[0]!r} in [prices]; valid keys: {', '.join(PRICE_FIELDS)}."
        )
    labels = file_prices.get("usd_per_label", {})
    if not isinstance(labels, dict):
        raise ValueError(f"[prices].usd_per_label must be a table of TASK = USD, got {labels!r}.")
    dollars = {f"usd_per_label.{task}": usd for task, usd in labels.items()}
    if "usd_per_device_hour" in file_prices:
        dollars["usd_per_device_hour"] = file_prices["usd_per_device_hour"]
    for key, value in dollars.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"[prices].{key} must be a number of dollars, got {value!r}.")
    flag = file_prices.get("charge_student_training")
    if flag is not None and not isinstance(flag, bool):
        raise ValueError(f"[prices].charge_student_training must be true or false, got {flag!r}.")
    book = base.with_overrides(
        usd_per_label={str(k): float(v) for k, v in labels.items()},
        usd_per_device_hour=file_prices.get("usd_per_device_hour"),
        charge_student_training=file_prices.get("charge_student_training"),
    )
    return book.with_overrides(
        usd_per_label=parse_price_overrides(cli_prices or []),
        usd_per_device_hour=usd_per_device_hour,
        charge_student_training=charge_student_training,
    )


def book_from(
    args: Any, file_cfg: Mapping[str, Any], tasks: Mapping[str, TaskSpec] | None = None
) -> PriceBook:
    """The price book of a command: a --config file's prices (its `[prices]` table, or the
    same keys at its top level like every other option), then the command line's."""
    top = {
        k: file_cfg[k] for k in ("usd_per_device_hour", "charge_student_training") if k in file_cfg
    }
    file_prices = {**top, **(file_cfg.get("prices") or {})}
    listed = file_cfg.get("price") or []
    if not isinstance(listed, list):
        raise ValueError(f'--config\'s price must be a list of "TASK=USD", got {listed!r}.')
    return price_book(
        file_prices,
        [*map(str, listed), *(getattr(args, "price", None) or [])],
        getattr(args, "usd_per_device_hour", None),
        getattr(args, "charge_student_training", None),
        tasks,
    )


def user_tasks(task_files: list[str] | None) -> dict[str, TaskSpec]:
    specs = [load_task_file(f) for f in task_files or []]
    return {spec.name: spec for spec in specs}
