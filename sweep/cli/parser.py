"""The `sweep` command line's parser: every option of every command, unset options None so
that a --config file can fill them. What an option sets is derived from its name (see
`sweep.cli.fields.field_of`): a new trial or sweep field needs only its line here."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any, NoReturn

from objectives.trial_config import PRESETS
from search_spaces import SPACES
from sweep import config


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
    if not sweep:
        parser.add_argument(
            "--preset",
            choices=sorted(PRESETS),
            help="training recipe: 'paper' (20/20/50 epochs, lr 3e-5) or 'cpu-small'",
        )
    else:
        parser.add_argument("--preset", choices=sorted(PRESETS), help="training recipe")
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
    parser.add_argument(
        "--meter",
        choices=["estimated", "measured", "paper"],
        help="how compute is priced: FLOPs, wall clock, or the paper's per-task cost model",
    )
    parser.add_argument(
        "--a-usd",
        type=float,
        metavar="USD",
        help="the paper meter's fixed teacher cost a (default: the task's; $3 for the paper's "
        "tasks, an assumption)",
    )
    parser.add_argument("--hardware", help="FLOP profile for the estimated meter: a100, h100, cpu")
    parser.add_argument("--n-devices", type=int, help="devices a distillation trial holds")
    parser.add_argument("--cache-dir", help="stage cache folder shared by trials")
    _add_task_options(parser)
    _add_price_options(parser)


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, metavar="K", help="finished trials wanted")
    parser.add_argument("--name", help="sweep name (default TASK-B<budget>-N<seed labels>)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep --name")
    parser.add_argument("--seeds", type=int, help="seeds per trial (mean and spread)")
    parser.add_argument(
        "--sampler",
        choices=config.SAMPLERS,
        help="Optuna sampler (posterior: the landscape posterior; tpe: f = 0, 1, 0.5 then TPE)",
    )
    parser.add_argument("--space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--sampler-seed", type=int)
    parser.add_argument("--concurrency", type=int, help="trials at once (1)")
    parser.add_argument("--retries", type=int, help="retries of a failed trial (0)")
    parser.add_argument(
        "--max-spend",
        type=float,
        metavar="USD",
        help="start no trial that could take the real compute spent (sweep ledger) over USD; "
        "`sweep plan`: all pilots together (default 10 %% of --budget)",
    )
    parser.add_argument("--asha", action="store_true", default=None, help="stop bad trials early")
    parser.add_argument(
        "--pending-timeout",
        type=float,
        metavar="S",
        help="stop the sweep when a trial waits longer than S seconds for the cluster's "
        f"resources ({config.DEFAULT_PENDING_TIMEOUT_S:g}; inf: without bound)",
    )
    parser.add_argument(
        "--objective",
        choices=config.OBJECTIVES,
        help="real (default), synthetic or replay (a table of measured results)",
    )
    parser.add_argument(
        "--replay-table", metavar="CSV", help="results table for --objective replay"
    )
    parser.add_argument(
        "--standin-work-seconds", type=float, help="seconds each stand-in trial sleeps"
    )
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        default=None,
        help="every trial trains its own teacher and soft labels (no stage cache)",
    )
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--root", help="folder for the default stores (./runs)")
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///ROOT/mlflow.db)")
    parser.add_argument("--storage", help="Optuna storage (default sqlite:///ROOT/optuna.db)")
    parser.add_argument("--cpus-per-trial", type=float)
    parser.add_argument("--teacher-gpus", type=float, help="GPUs of a distillation trial")
    parser.add_argument("--student-gpus", type=float, help="GPUs of an annotation-only trial")
    parser.add_argument("--teacher-node-resource", help="custom resource of teacher nodes")
    parser.add_argument("--student-node-resource", help="custom resource of student nodes")


class _Numbers:
    """An argparse type for comma-separated numbers, naming the bad item (a config file
    gives the same as a list: `item` is each number's type)."""

    def __init__(self, item: type[int] | type[float], what: str) -> None:
        self.item, self.what = item, what

    def __call__(self, text: str) -> list[Any]:
        try:
            return [self.item(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{self.what} takes comma-separated {self.item.__name__}s (e.g. 100,500), "
                f"got {text!r}"
            ) from None


def _numbers(kind: type[int] | type[float], what: str) -> Callable[[str], list[Any]]:
    return _Numbers(kind, what)


# Keys the price book reads and checks itself (`sweep.config.files.price_book`).
_PRICE_KEYS = frozenset({"usd_per_device_hour", "charge_student_training", "price"})


def file_values(command: str, path: str, values: dict[str, Any]) -> dict[str, Any]:
    """A --config file's values parsed as the command line parses its options: each value
    must be what its option takes (TOML's `100.7` is no `--seed-labels`, `true` no
    `--budget`), and a string goes through the option's own type (`budget = "30"`)."""
    actions = {action.dest: action for action in command_parser(command)._actions}
    out = dict(values)
    for key, value in values.items():
        action = actions.get(key)
        if action is not None and key not in _PRICE_KEYS:
            out[key] = _file_value(action, value, f"--config {path!r}: {key}")
    return out


def _file_value(action: argparse.Action, value: Any, where: str) -> Any:
    if action.nargs == 0:  # a flag (store_true, store_false)
        if not isinstance(value, bool):
            raise UsageError(f"{where}: invalid value {value!r}; true or false")
        return value
    if isinstance(action, argparse._AppendAction):  # repeatable: a list, or one value
        items = value if isinstance(value, list) else [value]
        return [_one_value(action.type, item, where) for item in items]
    return _one_value(action.type, value, where)


def _one_value(kind: Any, value: Any, where: str) -> Any:
    if isinstance(kind, _Numbers) and isinstance(value, list):
        return [_one_value(kind.item, item, where) for item in value]
    if isinstance(value, str):
        if kind is None:
            return value
        try:
            return kind(value)  # the command line's own parsing
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{where}: {exc}") from None
        except (TypeError, ValueError):
            pass
    elif kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    name = {None: "string", float: "float", int: "int"}.get(kind, "")
    if isinstance(kind, _Numbers):
        name = f"list of {kind.item.__name__}"
    raise UsageError(f"{where}: invalid {name} value: {value!r}")


def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one command (`run`, `trial`, ...)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]  # type: ignore[no-any-return]


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///ROOT/mlflow.db)")
    parser.add_argument("--root", default=config.DEFAULT_ROOT, help="folder of the default stores")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweep",
        description="Distill or annotate? Sweep the compute share of a labelling budget.",
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every package's INFO messages (stage timings, rounds)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]

    _add_work_commands(sub)
    _add_query_commands(sub)
    return parser


def _add_work_commands(sub: Any) -> None:
    """The commands that train: tasks (what can be trained), trial, run, grid."""
    tasks = sub.add_parser("tasks", help="list the task registry with prices and data found")
    _add_task_options(tasks)
    _add_price_options(tasks)
    tasks.add_argument("--json", action="store_true", help="machine-readable output")

    trial = sub.add_parser("trial", help="run one trial: train, distill or annotate, and score")
    _add_trial_options(trial, sweep=False)
    trial.add_argument("--json", action="store_true", help="machine-readable output")

    run = sub.add_parser("run", help="run (or --resume) a sweep with Ray Tune, Optuna, MLflow")
    _add_trial_options(run, sweep=True)
    _add_sweep_options(run)
    run.add_argument(
        "--budget-range",
        type=_numbers(float, "--budget-range"),
        metavar="LOW,HIGH",
        help="search the budget too: two objectives (score, dollars) and a Pareto set",
    )
    run.add_argument(
        "--warm-start",
        action="append",
        metavar="TASK",
        help="try the best compute shares found on TASK first (repeatable)",
    )

    grid = sub.add_parser(
        "grid", help="the paper's labelled x unlabelled grid, with its cost/score Pareto front"
    )
    _add_trial_options(grid, sweep=True)
    _add_sweep_options(grid)
    grid.add_argument(
        "--labels", type=_numbers(int, "--labels"), help="labels bought, e.g. 100,500,1000"
    )
    grid.add_argument(
        "--unlabelled", type=_numbers(int, "--unlabelled"), help="e.g. 0,10000,100000"
    )
    grid.add_argument(
        "--compute-allowance",
        type=float,
        metavar="USD",
        help="most compute dollars one point may spend "
        f"({config.DEFAULT_COMPUTE_ALLOWANCE_USD:g}); what it does not use is kept",
    )
    grid.add_argument("--out", help="folder for the grid plot (default ROOT/report)")

    plan = sub.add_parser(
        "plan", help="the split at --budget before spending it, with what deciding cost"
    )
    _add_trial_options(plan, sweep=True)
    _add_sweep_options(plan)
    plan.add_argument(
        "--fresh", action="store_true", help="ignore the task's finished trials in the store"
    )
    plan.add_argument(
        "--pilots",
        type=int,
        metavar="N",
        help="at most N pilots (default 12); 0: the answer from what is known only, free",
    )
    plan.add_argument(
        "--landscape",
        action="append",
        metavar="FILE",
        help="a measured L x U grid (replay-table CSV, e.g. from sweep grid) for the prior",
    )


def _add_query_commands(sub: Any) -> None:
    """The commands that read finished trials, serve them, check or demo."""
    frontier = sub.add_parser(
        "frontier", help="recommended split and predicted score for any budget (reads MLflow)"
    )
    frontier.add_argument("--task", required=True)
    frontier.add_argument(
        "--budgets", type=_numbers(float, "--budgets"), required=True, metavar="B1,B2,..."
    )
    frontier.add_argument("--seed-labels", type=int, help="labels already owned (the trials')")
    frontier.add_argument(
        "--sweep", action="append", metavar="NAME", help="fit on these sweeps only (repeatable)"
    )
    frontier.add_argument(
        "--holdout-budget",
        type=float,
        metavar="USD",
        help="fit without the trials at this budget and compare the model's predictions with them",
    )
    frontier.add_argument("--max-unlabelled", type=int, help="pool cap (default: seen in trials)")
    frontier.add_argument("--out", help="folder for the frontier plot (default ROOT/report)")
    frontier.add_argument("--json", action="store_true")
    _add_store_options(frontier)

    best = sub.add_parser("best", help="best allocation per task and budget (reads MLflow)")
    best.add_argument("--task")
    best.add_argument("--budget", type=float, metavar="USD")
    best.add_argument("--sweep", action="append", metavar="NAME", help="these sweeps only")
    best.add_argument(
        "--pareto", action="store_true", help="the trials no cheaper trial beats (score, $)"
    )
    best.add_argument("--json", action="store_true")
    _add_store_options(best)

    report = sub.add_parser("report", help="PNG plots of a task's trials, logged to MLflow")
    report.add_argument("--task", required=True)
    report.add_argument("--out", help="folder for the PNGs (default ROOT/report)")
    _add_store_options(report)

    ui = sub.add_parser("ui", help="start the MLflow UI on the store, print its runs' links")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, help="default 5000, or a free port when 5000 is taken")
    ui.add_argument("--task", help="this task's runs only (default: every task in the store)")
    ui.add_argument(
        "--no-browser", action="store_true", help="print the links, open no browser window"
    )
    _add_store_options(ui)

    doctor = sub.add_parser("doctor", help="check Ray, stores, data, GPUs and offline mode")
    doctor.add_argument("--task", action="append", help="tasks whose data must be found")
    doctor.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    doctor.add_argument("--storage", help="Optuna storage (default sqlite:///ROOT/optuna.db)")
    doctor.add_argument(
        "--learn",
        action="store_true",
        help="does this recipe learn here? train one small teacher and one annotate-only "
        "student on the seed labels, each against the trivial baseline (minutes on a CPU)",
    )
    doctor.add_argument(
        "--seed-labels", type=int, default=100, metavar="N", help="labels to learn from (100)"
    )
    doctor.add_argument("--preset", choices=sorted(PRESETS), help="training recipe")
    for option in ("teacher", "student"):
        doctor.add_argument(f"--{option}", help=f"{option} model (the recipe's default)")
        doctor.add_argument(f"--{option}-epochs", type=int)
        doctor.add_argument(f"--{option}-lr", type=float)
    _add_task_options(doctor)
    _add_store_options(doctor)

    demo = sub.add_parser(
        "demo", help="a real offline sweep on BBC News (about 8 minutes on 2 cores)"
    )
    demo.add_argument("--root", default=config.DEFAULT_ROOT)
    demo.add_argument("--trials", type=int, default=6)
