"""Command-line options and config-file keys mapped onto config fields: what an option sets
is derived from the config dataclasses' fields, so a new field needs only its parser line."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from objectives.budget import PriceBook
from objectives.tasks import TaskSpec, get_task
from objectives.trial_config import TrialConfig
from sweep.config import PRICE_FIELDS, SWEEP_FIELDS

# CLI option -> config field, where the two names differ; every other option is named after
# its field (`--teacher-lr` is `teacher_lr`). What an option sets is derived from the config
# dataclasses' fields, so a new field needs only its parser line (tests check both ways).
OPTION_TO_FIELD = {
    "budget": "budget_usd",
    "seed_labels": "n_seed_labels",
    "trials": "n_trials",
    "compute_allowance": "compute_allowance_usd",
    "max_spend": "max_spend_usd",
    "pending_timeout": "pending_timeout_s",
}
FIELD_TO_OPTION = {v: k for k, v in OPTION_TO_FIELD.items()}
TRIAL_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialConfig))
# Trial fields the price book and the task file resolve, not copied from their options.
_RESOLVED_TRIAL_FIELDS = frozenset({*PRICE_FIELDS, "task_file"})


def field_of(option: str) -> str:
    """The config field an option (argparse dest or config-file key) sets."""
    return OPTION_TO_FIELD.get(option, option)


def option_of(field_name: str) -> str:
    return FIELD_TO_OPTION.get(field_name, field_name)


def trial_options(args: Any) -> tuple[str, ...]:
    """The options of a parsed command that set TrialConfig fields."""
    return tuple(
        name
        for name in vars(args)
        if field_of(name) in TRIAL_FIELDS and field_of(name) not in _RESOLVED_TRIAL_FIELDS
    )


def sweep_options(args: Any) -> tuple[str, ...]:
    """The options of a parsed command that set SweepConfig fields of their own (the task,
    budget and seed labels are trial fields too and travel with them)."""
    return tuple(
        name
        for name in vars(args)
        if field_of(name) in SWEEP_FIELDS and field_of(name) not in TRIAL_FIELDS
    )


def merged(args: Any, file_cfg: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Command-line values over config-file values; options left unset are None."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            value = file_cfg.get(name)
        if value is not None:
            out[name] = value
    return out


# The parser's own entries, which no config file sets: the command's name, the file itself.
NOT_FILE_KEYS = frozenset({"command", "config"})


def check_file_keys(args: Any, file_cfg: Mapping[str, Any]) -> None:
    """A --config key that no option of this command has is a typo: name it."""
    valid = {*vars(args), "prices", "task_file"} - NOT_FILE_KEYS
    unknown = sorted(set(file_cfg) - valid)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(valid), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"Unknown key {unknown[0]!r} in --config; {hint}valid keys: {', '.join(sorted(valid))}."
        )


def trial_fields(
    args: Any, file_cfg: Mapping[str, Any], book: PriceBook, extra: Mapping[str, TaskSpec]
) -> dict[str, Any]:
    """TrialConfig fields from the command line and a config file, prices resolved."""
    values = merged(args, file_cfg, trial_options(args))
    fields = {field_of(k): v for k, v in values.items()}
    task_files = getattr(args, "task_file", None) or file_cfg.get("task_file") or []
    if isinstance(task_files, str):
        task_files = [task_files]
    if task_files:
        if len(task_files) > 1:
            raise ValueError("A trial or sweep takes one --task-file; got several.")
        fields["task_file"] = str(Path(task_files[0]).resolve())
    if "task" not in fields and len(extra) == 1:
        fields["task"] = next(iter(extra))  # the task file names its task
    if "task" in fields:
        get_task(fields["task"], extra)  # an unknown name lists the valid ones first
        fields["usd_per_label"] = book.label_price(fields["task"])
    fields["usd_per_device_hour"] = book.usd_per_device_hour
    fields["charge_student_training"] = book.charge_student_training
    return fields
