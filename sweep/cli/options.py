"""From a parsed command line and its --config file to the configs: CLI over file values, the
machine's default recipe, prices resolved, and the rules of a resume (what it may change)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from objectives.budget import PriceBook
from objectives.data import check_data_dir
from sweep import config
from sweep.cli import fields as option_fields
from sweep.cli.parser import UsageError, file_values


def read_config(args: argparse.Namespace) -> dict[str, Any]:
    """The command's --config file: every key an option of the command, every value what
    that option takes (parsed as the command line would)."""
    file_cfg = config.read_config_file(args.config)
    option_fields.check_file_keys(args, file_cfg)
    return file_values(args.command, str(args.config), file_cfg)


def trial_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config file, TrialConfig fields) for a command with trial options."""
    check_data_dir(args.data_dir)
    file_cfg = read_config(args)
    task_files = args.task_file or file_cfg.get("task_file") or []
    extra = config.user_tasks([task_files] if isinstance(task_files, str) else task_files)
    book = config.book_from(args, file_cfg, extra)
    return file_cfg, option_fields.trial_fields(args, file_cfg, book, extra)


def require(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if name not in fields:
            option = option_fields.option_of(name)
            raise UsageError(f"missing --{option.replace('_', '-')} (or {option} in --config)")


def has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def choose_preset(named: str | None, out: TextIO | None = None) -> str:
    """The training recipe: the one named, else the one that fits this machine. The notice
    goes to standard output (stderr holds only errors), or `out` (`--json` keeps stdout)."""
    out = out or sys.stdout
    if named is None and not has_cuda():
        print(
            "no GPU here: training with the cpu-small recipe (about a minute a trial); "
            "--preset paper runs the paper's",
            file=out,
        )
        return "cpu-small"
    named = named or "paper"
    if named == "paper" and not has_cuda():
        print(
            "warning: --preset paper on a CPU (20 teacher, 20 student and 50 distillation "
            "epochs, up to 1,000 scored rows) takes tens of minutes to hours a trial; "
            "cpu-small takes about a minute",
            file=out,
        )
    return named


def stored_sweep(sweep_values: dict[str, Any]) -> dict[str, Any]:
    """The config a sweep to be resumed was started with."""
    from sweep.tracking.optuna_store import stored_config

    if "name" not in sweep_values:
        raise UsageError("--resume needs --name NAME of the sweep to continue")
    storage = sweep_values.get("storage") or config.default_storage(
        sweep_values.get("root", config.DEFAULT_ROOT)
    )
    stored = stored_config(sweep_values["name"], storage)
    if stored is None:
        raise ValueError(
            f"--resume: no sweep named {sweep_values['name']!r} in {storage}; drop --resume "
            "to start it, or check --name, --root and --storage."
        )
    return stored


def resumed(stored: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The stored config with what this command line may change; a change to what the
    sweep measures is refused."""
    # Paths as the stored config keeps them: absolute (`tests/data` is `/abs/tests/data`).
    given_trial = config.absolute_paths(dict(values.get("trial", {})))
    for key in config.FIXED_ON_RESUME:
        if key != "trial" and key in values and values[key] != stored[key]:
            raise ValueError(
                f"--resume conflicts with the stored sweep: {key}={values[key]!r} but the "
                f"sweep {stored['name']!r} was started with {key}={stored[key]!r}."
            )
    for key, value in given_trial.items():
        if key in stored["trial"] and stored["trial"][key] != value:
            raise ValueError(
                f"--resume conflicts with the stored sweep: {key}={value!r} but it was "
                f"started with {stored['trial'][key]!r}."
            )
    merged = {**stored, **{k: v for k, v in values.items() if k != "trial"}}
    merged["trial"] = {**stored["trial"], **given_trial}
    return merged


def sweep_config(
    args: argparse.Namespace, grid: tuple[list[int], list[int]] | None = None
) -> config.SweepConfig:
    """A SweepConfig from the command line and --config; on --resume, from the stored one."""
    file_cfg, fields = trial_settings(args)
    sweep_values = {
        option_fields.field_of(k): v
        for k, v in option_fields.merged(args, file_cfg, option_fields.sweep_options(args)).items()
    }
    if grid is not None and grid[0]:
        sweep_values["grid_labels"], sweep_values["grid_unlabelled"] = grid
    stored = stored_sweep(sweep_values) if args.resume else None
    if stored is not None and not (args.price or args.usd_per_device_hour or args.config):
        for key in config.PRICE_FIELDS:  # keep the stored prices unless new ones were given
            fields.pop(key, None)
    values: dict[str, Any] = {
        **{k: fields.pop(k) for k in ("task", "budget_usd", "n_seed_labels") if k in fields},
        **sweep_values,
        "trial": fields,
    }
    real = values.get("objective", "real") == "real"
    if real and (stored is None or "preset" in values):  # a resume keeps its recipe
        values["preset"] = choose_preset(values.get("preset"))
    if stored is not None:
        values = resumed(stored, values)
    if values.get("budget_range") and "budget_usd" not in values:
        values["budget_usd"] = min(values["budget_range"])  # names the sweep; not searched
    if values.get("grid_labels"):  # each point's budget is its labels plus the allowance
        values.setdefault("budget_usd", 0.0)
        # A resumed grid keeps its stored allowance unless one is given.
        values.setdefault("compute_allowance_usd", config.DEFAULT_COMPUTE_ALLOWANCE_USD)
    require(values, "task", "budget_usd", "n_seed_labels")
    if "n_trials" not in values:
        raise UsageError("missing --trials (or trials in --config)")
    values.setdefault(
        "name",
        config.default_sweep_name(values["task"], values["budget_usd"], values["n_seed_labels"]),
    )
    if values.get("replay_table"):
        values["replay_table"] = str(Path(values["replay_table"]).resolve())
    return config.SweepConfig(**values)


def grid_config(args: argparse.Namespace) -> config.SweepConfig:
    """The SweepConfig of `sweep grid`: every point once, all labels bought, each point's
    compute capped by --compute-allowance (a resumed grid keeps its own unless one is given)."""
    if not args.resume and (not args.labels or args.unlabelled is None):
        raise UsageError(
            "missing --labels and --unlabelled (e.g. --labels 100,500 --unlabelled 0,1000)"
        )
    if args.budget is not None or args.seed_labels:
        raise UsageError(
            "a grid point buys its labels and pays its compute: it takes no --budget or "
            "--seed-labels (--compute-allowance caps each point's compute)"
        )
    args.seed_labels = 0
    # Each point once: a number given twice (`--labels 100,100`) is one point.
    args.labels = list(dict.fromkeys(args.labels or []))
    args.unlabelled = list(dict.fromkeys(args.unlabelled or []))
    args.trials = len(args.labels) * len(args.unlabelled) or None
    if args.name is None and args.task:
        args.name = f"{args.task}-grid"
    return sweep_config(args, grid=(args.labels or [], args.unlabelled or []))


PLAN_OWNED = ("name", "trials", "resume")  # `sweep plan` sets these for each pilot sweep


def plan_options(args: argparse.Namespace) -> PriceBook:
    """`sweep plan`'s --config: the file fills the options the command line left unset, and
    its prices are passed on as options, so that the pilots' grid sweeps (which take no
    budget) see the plan's values and not the file's budget. Returns the price book.
    The plan names and sizes its own sweeps: `--name`, `--trials` and `--resume` are refused
    on its command line and ignored in a file (a file shared with `sweep run` has them)."""
    for option in PLAN_OWNED:
        if getattr(args, option):
            raise UsageError(
                f"sweep plan takes no --{option}: it names and sizes its own pilot sweeps "
                "(TASK-plan-STAMP-rN); each plan starts from the task's finished trials"
            )
    file_cfg = read_config(args)
    files = file_cfg.get("task_file") or []
    args.task_file = args.task_file or ([files] if isinstance(files, str) else files)
    extra = config.user_tasks(args.task_file)
    book = config.book_from(args, file_cfg, extra)
    for key, value in file_cfg.items():
        owned = key in ("prices", "price", "task_file", *PLAN_OWNED)
        if not owned and getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.task is None and len(extra) == 1:
        args.task = next(iter(extra))  # the task file names its task, as for `sweep run`
    args.config = None
    args.price = [f"{task}={usd!r}" for task, usd in book.usd_per_label.items()]
    args.usd_per_device_hour = book.usd_per_device_hour
    args.charge_student_training = book.charge_student_training
    return book
