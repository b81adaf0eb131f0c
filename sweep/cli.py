"""`sweep`: the command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
from objectives.trial_config import PRESETS
from sweep import config

EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad command line; reported like every other user error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block; `sweep CMD --help` still shows usage.
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="folder holding <task>/{train,dev,test}.{jsonl,csv,parquet}"
    )
    parser.add_argument(
        "--task-file",
        action="append",
        default=[],
        metavar="FILE",
        help="a TOML/YAML file describing your own task (repeatable)",
    )


def _add_price_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="TASK=USD",
        help="override the price per label of a task (repeatable)",
    )
    parser.add_argument("--usd-per-device-hour", type=float, help="compute price (default 1.875)")
    parser.add_argument(
        "--charge-student-training",
        action="store_true",
        default=None,
        help="charge the student's own training to the budget (off in the paper)",
    )
    parser.add_argument("--config", help="TOML file with the same fields (and a [prices] table)")


def cmd_tasks(args: argparse.Namespace) -> int:
    check_data_dir(args.data_dir)
    extra = config.user_tasks(args.task_file)
    file_cfg = config.read_config_file(args.config)
    book = config.price_book(
        file_cfg.get("prices"), args.price, args.usd_per_device_hour, None, extra
    )
    rows: list[dict[str, Any]] = []
    for name in task_names(extra):
        spec = get_task(name, extra)
        entry: dict[str, Any] = {
            "name": name,
            "type": spec.kind,
            "metric": spec.metric,
            "usd_per_label": book.label_price(name),
            "labels": list(spec.labels),
            "source": "not found",
            "rows": {},
            "description": spec.description,
        }
        try:
            entry["source"] = data_source(spec, args.data_dir)
            data = load_task_data(spec, args.data_dir)
            entry["rows"] = {s: len(data.split(s)) for s in ("train", "dev", "test")}
        except ValueError as exc:
            entry["error"] = str(exc)
        rows.append(entry)
    if args.json:
        print(
            json.dumps({"usd_per_device_hour": book.usd_per_device_hour, "tasks": rows}, indent=2)
        )
        return 0
    header = ("task", "type", "metric", "$/label", "rows train/dev/test", "data source")
    table = [
        (
            r["name"],
            r["type"],
            r["metric"],
            f"{r['usd_per_label']:.3f}",
            "/".join(str(r["rows"].get(s, 0)) for s in ("train", "dev", "test"))
            if r["rows"]
            else "-",
            r["source"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in (header, *table)) for i in range(len(header))]
    for row in (header, *table):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"compute: ${book.usd_per_device_hour:.3f} per device-hour")
    return 0


def _add_trial_options(parser: argparse.ArgumentParser, sweep: bool) -> None:
    """Options shared by `trial` and `run`; unset options are None so a --config can fill them."""
    parser.add_argument("--task", help="task name (see `sweep tasks`)")
    parser.add_argument("--budget", type=float, metavar="USD", help="extra budget in dollars")
    parser.add_argument("--seed-labels", type=int, metavar="N", help="labels already owned")
    if not sweep:
        parser.add_argument(
            "--compute-fraction", type=float, metavar="F", help="share of the budget for compute"
        )
        parser.add_argument("--seed", type=int, help="seed of the label permutation and models")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="training recipe: 'paper' (20/20/50 epochs, lr 3e-5) or 'cpu-small'",
    )
    parser.add_argument("--family", choices=["auto", "encoder", "seq2seq"])
    parser.add_argument("--teacher", help="teacher model: hub id, local path or offline name")
    parser.add_argument("--student", help="student model: hub id, local path or offline name")
    parser.add_argument("--temperature", type=float, help="distillation temperature (2.0)")
    parser.add_argument("--gold-weight", type=float, help="share of gold CE in distillation")
    for name in ("teacher-epochs", "student-epochs", "distill-epochs", "batch-size"):
        parser.add_argument(f"--{name}", type=int)
    parser.add_argument("--teacher-lr", type=float)
    parser.add_argument("--student-lr", type=float)
    parser.add_argument("--max-unlabelled", type=int, help="cap on the unlabelled pool")
    parser.add_argument("--max-eval-examples", type=int, help="cap on dev/test rows scored")
    parser.add_argument("--meter", choices=["estimated", "measured"], help="how compute is priced")
    parser.add_argument("--hardware", help="FLOP profile for the estimated meter: a100, h100, cpu")
    parser.add_argument("--n-devices", type=int, help="devices a distillation trial holds")
    parser.add_argument("--cache-dir", help="stage cache folder shared by trials")
    _add_task_options(parser)
    _add_price_options(parser)


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config file, TrialConfig fields) for a command with trial options."""
    check_data_dir(args.data_dir)
    file_cfg = config.read_config_file(args.config)
    task_files = args.task_file or file_cfg.get("task_file") or []
    extra = config.user_tasks([task_files] if isinstance(task_files, str) else task_files)
    book = config.price_book(
        file_cfg.get("prices"),
        args.price,
        args.usd_per_device_hour,
        args.charge_student_training,
        extra,
    )
    return file_cfg, config.trial_fields(args, file_cfg, book, extra)


def _require(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if name not in fields:
            option = {v: k for k, v in config.ARG_TO_FIELD.items()}.get(name, name)
            raise UsageError(f"missing --{option.replace('_', '-')} (or {option} in --config)")


def cmd_trial(args: argparse.Namespace) -> int:
    from objectives.distill_or_annotate import run_trial
    from objectives.trial_config import trial_config

    file_cfg, fields = _settings(args)
    _require(fields, "task", "budget_usd", "n_seed_labels", "compute_fraction")
    cfg = trial_config(fields, args.preset or file_cfg.get("preset", "paper"))
    result = run_trial(cfg, report=_print_report if args.verbose else None)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(format_result(result.to_dict()))
    return 0


def _print_report(metrics: dict[str, Any]) -> None:
    if metrics.get("stage") != "final":
        print(
            f"  {metrics['stage']} epoch {metrics['epoch']}: dev {metrics['dev_score_quick']:.4f}"
        )


def format_result(r: dict[str, Any]) -> str:
    """A trial's result with both ledgers, for people."""
    teacher = "-" if r["teacher_score"] is None else f"{r['teacher_score']:.4f}"
    test = "-" if r["test_score"] is None else f"{r['test_score']:.4f}"
    return "\n".join(
        [
            f"{r['task']}  budget ${r['budget_usd']:.2f}  compute fraction "
            f"{r['compute_fraction']:.3f}  seed {r['seed']}  ({r['strategy']})",
            f"  student {r['metric']}: dev {r['score']:.4f}  test {test}   teacher dev {teacher}"
            f" ({r['teacher_status']}, cache {r['teacher_cache']})",
            f"  labels: {r['n_seed_labels']} seed + {r['n_new_labels']} bought"
            f" ({r['n_labels_used']} used); unlabelled distilled: {r['n_unlabelled']}"
            f" (soft-label cache {r['soft_cache']})",
            "  allocation ledger (what a practitioner pays):",
            f"    annotation ${r['annotation_usd']:.4f} + compute ${r['compute_spent_usd']:.4f}"
            f" of ${r['compute_usd']:.4f} = ${r['practitioner_usd']:.4f};"
            f" unspent ${r['unspent_usd']:.4f}",
            f"    {r['device_seconds'] / 3600:.4f} device-hours charged",
            "  sweep ledger (what this run really spent):",
            f"    {r['sweep_device_seconds']:.1f} device-seconds = ${r['sweep_spent_usd']:.4f}",
        ]
    )


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweep",
        description="Distill or annotate? Sweep the compute share of a labelling budget.",
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log progress (INFO) and intermediate scores"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]

    tasks = sub.add_parser("tasks", help="list the task registry with prices and data found")
    _add_task_options(tasks)
    _add_price_options(tasks)
    tasks.add_argument("--json", action="store_true", help="machine-readable output")
    tasks.set_defaults(func=cmd_tasks)

    trial = sub.add_parser("trial", help="run one trial: train, distill or annotate, and score")
    _add_trial_options(trial, sweep=False)
    trial.add_argument("--json", action="store_true", help="machine-readable output")
    trial.set_defaults(func=cmd_trial)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args = build_parser().parse_args(argv)
        if args.verbose:
            for package in ("objectives", "search_spaces", "cluster", "sweep"):
                logging.getLogger(package).setLevel(logging.INFO)
        func: Command = args.func
        return func(args)
    except ValueError as exc:  # UsageError included: every user error is a ValueError
        print(f"sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sweep: interrupted", file=sys.stderr)
        return 130
