"""`sweep`: the command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
from objectives.trial_config import PRESETS
from search_spaces import SPACES
from sweep import config
from sweep.tables import format_table

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
    print(format_table(header, [[str(cell) for cell in row] for row in table]))
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
        print(f"  {metrics['stage']} epoch {metrics['epoch']}: dev {metrics['score']:.4f}")


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


SWEEP_ARGS = (
    "name",
    "trials",
    "seeds",
    "sampler",
    "space",
    "concurrency",
    "retries",
    "asha",
    "objective",
    "replay_table",
    "address",
    "root",
    "tracking_uri",
    "storage",
    "cpus_per_trial",
    "teacher_gpus",
    "student_gpus",
    "teacher_node_resource",
    "student_node_resource",
    "sampler_seed",
    "preset",
)
# Fields that define what a sweep measures: a resume may not change them.
FIXED_ON_RESUME = ("task", "budget_usd", "n_seed_labels", "seeds", "objective", "preset", "trial")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, metavar="K", help="finished trials wanted")
    parser.add_argument("--name", help="sweep name (default TASK-B<budget>-N<seed labels>)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep --name")
    parser.add_argument("--seeds", type=int, help="seeds per trial (mean and spread)")
    parser.add_argument("--sampler", choices=config.SAMPLERS, help="Optuna sampler (tpe)")
    parser.add_argument("--space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--sampler-seed", type=int)
    parser.add_argument("--concurrency", type=int, help="trials at once (1)")
    parser.add_argument("--retries", type=int, help="retries of a failed trial (0)")
    parser.add_argument("--asha", action="store_true", default=None, help="stop bad trials early")
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
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--root", help="folder for the default stores (./runs)")
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///ROOT/mlflow.db)")
    parser.add_argument("--storage", help="Optuna storage (default sqlite:///ROOT/optuna.db)")
    parser.add_argument("--cpus-per-trial", type=float)
    parser.add_argument("--teacher-gpus", type=float, help="GPUs of a distillation trial")
    parser.add_argument("--student-gpus", type=float, help="GPUs of an annotation-only trial")
    parser.add_argument("--teacher-node-resource", help="custom resource of teacher nodes")
    parser.add_argument("--student-node-resource", help="custom resource of student nodes")


def _stored_sweep(sweep_values: dict[str, Any]) -> dict[str, Any]:
    """The config a sweep to be resumed was started with."""
    from sweep.tuner import stored_config

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


def _resumed(stored: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The stored config with what this command line may change; a change to what the
    sweep measures is refused."""
    given_trial = values.get("trial", {})
    for key in FIXED_ON_RESUME:
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


def sweep_config(args: argparse.Namespace) -> config.SweepConfig:
    """A SweepConfig from the command line and --config; on --resume, from the stored one."""
    file_cfg, fields = _settings(args)
    sweep_values = config.merged(args, file_cfg, SWEEP_ARGS)
    stored = _stored_sweep(sweep_values) if args.resume else None
    if stored is not None and not (args.price or args.usd_per_device_hour or args.config):
        for key in config.PRICE_FIELDS:  # keep the stored prices unless new ones were given
            fields.pop(key, None)
    values: dict[str, Any] = {
        **{k: fields.pop(k) for k in ("task", "budget_usd", "n_seed_labels") if k in fields},
        **{k: v for k, v in sweep_values.items() if k != "trials"},
        "trial": fields,
    }
    if "trials" in sweep_values:
        values["n_trials"] = sweep_values["trials"]
    if stored is not None:
        values = _resumed(stored, values)
    _require(values, "task", "budget_usd", "n_seed_labels")
    if "n_trials" not in values:
        raise UsageError("missing --trials (or trials in --config)")
    values.setdefault(
        "name",
        config.default_sweep_name(values["task"], values["budget_usd"], values["n_seed_labels"]),
    )
    if values.get("replay_table"):
        values["replay_table"] = str(Path(values["replay_table"]).resolve())
    return config.SweepConfig(**values)


def cmd_run(args: argparse.Namespace) -> int:
    from sweep.tuner import run_sweep

    cfg = sweep_config(args)
    summary = run_sweep(cfg, resume=args.resume)
    print(
        f"sweep {summary.name}: {summary.n_finished} trials finished, {summary.n_failed} failed;"
        f" best score {summary.best_score if summary.best_score is not None else '-'}"
        f" with {summary.best_params}"
    )
    print(f"next: sweep best --task {summary.task} --tracking-uri {summary.tracking_uri}")
    return 0


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///ROOT/mlflow.db)")
    parser.add_argument("--root", default=config.DEFAULT_ROOT, help="folder of the default stores")


def _tracker(args: argparse.Namespace) -> Any:
    """A Tracker on an existing store; never creates an empty one."""
    uri = args.tracking_uri or config.default_tracking(args.root)
    path = config.store_path(uri)
    if path is not None and not path.is_file():
        raise ValueError(
            f"No MLflow store at {uri}; run a sweep first (`sweep demo`) or pass --tracking-uri."
        )
    from sweep.tracking import Tracker

    return Tracker(uri)


def cmd_best(args: argparse.Namespace) -> int:
    from sweep.results import best_allocations, format_best

    if args.budget is not None and args.budget <= 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got budget_usd={args.budget!r}.")
    rows = best_allocations(_tracker(args), args.task, args.budget)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    elif not rows:
        print("no finished trials match", file=sys.stderr)
    else:
        print(format_best(rows))
    return 0 if rows else 1


def cmd_report(args: argparse.Namespace) -> int:
    from sweep import plots
    from sweep.results import finished_trials

    tracker = _tracker(args)
    rows = finished_trials(tracker, args.task)
    if not rows:
        raise ValueError(f"No finished trials of task={args.task!r} in {tracker.tracking_uri}.")
    paths = plots.all_plots(rows, Path(args.out))
    for sweep in sorted({r.sweep for r in rows}):
        parent = tracker.find_sweep_run(args.task, sweep)
        if parent is not None:
            for path in paths:
                tracker.log_artifact(parent, str(path))
    for path in paths:
        print(path)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    tracker = _tracker(args)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracker.tracking_uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(command, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=20)
        print("MLflow UI stopped")
        return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cluster import ray_address
    from sweep import doctor

    check_data_dir(args.data_dir)
    extra = config.user_tasks(args.task_file)
    names = args.task or task_names(extra)
    for name in names:
        get_task(name, extra)
    stores = config.SweepConfig(
        name="doctor",
        task="-",
        budget_usd=1,
        n_seed_labels=0,
        n_trials=1,
        root=args.root,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
    )
    checks = [
        doctor.check_offline(),
        doctor.check_devices(),
        doctor.check_ray(ray_address(args.address)),
        doctor.check_tracking(stores.tracking),
        doctor.check_storage(stores.optuna_storage),
        *(
            doctor.check_data(get_task(n, extra), args.data_dir, required=bool(args.task))
            for n in names
        ),
    ]
    print(doctor.format_checks(checks))
    failed = [c for c in checks if c.failed]
    if failed:
        print(f"sweep doctor: {len(failed)} check(s) failed: {failed[0].name}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from sweep.demo import demo_config
    from sweep.results import best_allocations, format_best
    from sweep.tuner import run_sweep, stored_config

    cfg = demo_config(args.root, args.trials)
    resume = stored_config(cfg.name, cfg.optuna_storage) is not None
    print(
        f"demo: {cfg.n_trials} real trials on BBC News (budget ${cfg.budget_usd:g}, "
        f"{cfg.n_seed_labels} seed labels), MiniLM teacher, stores in {cfg.root}/"
        + (" (resuming the earlier demo)" if resume else ""),
        flush=True,
    )
    started = time.perf_counter()
    summary = run_sweep(cfg, resume=resume)
    from sweep.tracking import Tracker

    rows = best_allocations(Tracker(summary.tracking_uri), cfg.task, cfg.budget_usd)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; best allocation:")
    print(format_best(rows))
    print(
        f"\nopen the trials: sweep ui --root {cfg.root}    "
        f"plots: sweep report --task {cfg.task} --root {cfg.root}"
    )
    return 0


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

    run = sub.add_parser("run", help="run (or --resume) a sweep with Ray Tune, Optuna, MLflow")
    _add_trial_options(run, sweep=True)
    _add_sweep_options(run)
    run.set_defaults(func=cmd_run)

    best = sub.add_parser("best", help="best allocation per task and budget (reads MLflow)")
    best.add_argument("--task")
    best.add_argument("--budget", type=float, metavar="USD")
    best.add_argument("--json", action="store_true")
    _add_store_options(best)
    best.set_defaults(func=cmd_best)

    report = sub.add_parser("report", help="PNG plots of a task's trials, logged to MLflow")
    report.add_argument("--task", required=True)
    report.add_argument("--out", default="runs/report", help="folder for the PNGs")
    _add_store_options(report)
    report.set_defaults(func=cmd_report)

    ui = sub.add_parser("ui", help="start the MLflow UI on the store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    _add_store_options(ui)
    ui.set_defaults(func=cmd_ui)

    doctor = sub.add_parser("doctor", help="check Ray, stores, data, GPUs and offline mode")
    doctor.add_argument("--task", action="append", help="tasks whose data must be found")
    doctor.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    doctor.add_argument("--storage", help="Optuna storage (default sqlite:///ROOT/optuna.db)")
    _add_task_options(doctor)
    _add_store_options(doctor)
    doctor.set_defaults(func=cmd_doctor)

    demo = sub.add_parser(
        "demo", help="a real offline sweep on BBC News (about 8 minutes on 2 cores)"
    )
    demo.add_argument("--root", default=config.DEFAULT_ROOT)
    demo.add_argument("--trials", type=int, default=6)
    demo.set_defaults(func=cmd_demo)
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
    except KeyboardInterrupt as exc:
        print(f"sweep: {exc or 'interrupted'}", file=sys.stderr)
        return 130
