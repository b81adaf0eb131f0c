"""`sweep`: the command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
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


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweep",
        description="Distill or annotate? Sweep the compute share of a labelling budget.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tasks = sub.add_parser("tasks", help="list the task registry with prices and data found")
    _add_task_options(tasks)
    _add_price_options(tasks)
    tasks.add_argument("--json", action="store_true", help="machine-readable output")
    tasks.set_defaults(func=cmd_tasks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args = build_parser().parse_args(argv)
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        func: Command = args.func
        return func(args)
    except ValueError as exc:  # UsageError included: every user error is a ValueError
        print(f"sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sweep: interrupted", file=sys.stderr)
        return 130
