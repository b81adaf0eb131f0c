"""`sweep`: the command line. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
from objectives.trial_config import PRESETS
from search_spaces import SPACES
from sweep import config
from sweep.progress import TrialProgress
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
    parser.add_argument(
        "--meter",
        choices=["estimated", "measured", "paper"],
        help="how compute is priced: FLOPs, wall clock, or the paper's per-task cost model",
    )
    parser.add_argument("--hardware", help="FLOP profile for the estimated meter: a100, h100, cpu")
    parser.add_argument("--n-devices", type=int, help="devices a distillation trial holds")
    parser.add_argument("--cache-dir", help="stage cache folder shared by trials")
    _add_task_options(parser)
    _add_price_options(parser)


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config file, TrialConfig fields) for a command with trial options."""
    check_data_dir(args.data_dir)
    file_cfg = config.read_config_file(args.config)
    config.check_file_keys(args, file_cfg)
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
            option = config.option_of(name)
            raise UsageError(f"missing --{option.replace('_', '-')} (or {option} in --config)")


def cmd_trial(args: argparse.Namespace) -> int:
    from objectives.distill_or_annotate import run_trial
    from objectives.trial_config import trial_config

    file_cfg, fields = _settings(args)
    _require(fields, "task", "budget_usd", "n_seed_labels", "compute_fraction")
    named = args.preset or file_cfg.get("preset")
    cfg = trial_config(fields, _preset(named, sys.stderr if args.json else None))
    result = run_trial(cfg, report=TrialProgress())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(format_result(result.to_dict()))
    return 0


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _preset(named: str | None, out: TextIO | None = None) -> str:
    """The training recipe: the one named, else the one that fits this machine. The notice
    goes to standard output (stderr holds only errors), or `out` (`--json` keeps stdout)."""
    out = out or sys.stdout
    if named is None and not _has_cuda():
        print(
            "no GPU here: training with the cpu-small recipe (about a minute a trial); "
            "--preset paper runs the paper's",
            file=out,
        )
        return "cpu-small"
    named = named or "paper"
    if named == "paper" and not _has_cuda():
        print(
            "warning: --preset paper on a CPU (20 teacher, 20 student and 50 distillation "
            "epochs, up to 1,000 scored rows) takes tens of minutes to hours a trial; "
            "cpu-small takes about a minute",
            file=out,
        )
    return named


def format_result(r: dict[str, Any]) -> str:
    """A trial's result with both ledgers, for people."""
    teacher = "-" if r["teacher_score"] is None else f"{r['teacher_score']:.4f}"
    test = "-" if r["test_score"] is None else f"{r['test_score']:.4f}"
    low, high = r.get("score_low"), r.get("score_high")
    interval = "" if low is None or high is None else f" (90 % [{low:.4f}, {high:.4f}])"
    return "\n".join(
        [
            f"{r['task']}  budget ${r['budget_usd']:.2f}  compute fraction "
            f"{r['compute_fraction']:.3f}  seed {r['seed']}  ({r['strategy']})",
            f"  student {r['metric']}: dev {r['score']:.4f}{interval}  test {test}"
            f"   teacher dev {teacher}"
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


def _numbers(kind: type[int] | type[float], what: str) -> Callable[[str], list[Any]]:
    """An argparse type for comma-separated numbers, naming the bad item."""

    def parse(text: str) -> list[Any]:
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} takes comma-separated {kind.__name__}s (e.g. 100,500), got {text!r}"
            ) from None

    return parse


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
    file_cfg, fields = _settings(args)
    sweep_values = {
        config.field_of(k): v
        for k, v in config.merged(args, file_cfg, config.sweep_options(args)).items()
    }
    if grid is not None and grid[0]:
        sweep_values["grid_labels"], sweep_values["grid_unlabelled"] = grid
    stored = _stored_sweep(sweep_values) if args.resume else None
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
        values["preset"] = _preset(values.get("preset"))
    if stored is not None:
        values = _resumed(stored, values)
    if values.get("budget_range") and "budget_usd" not in values:
        values["budget_usd"] = min(values["budget_range"])  # names the sweep; not searched
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
    if not summary.n_finished:
        return _no_trial_finished(summary)
    pareto = f" --sweep {summary.name} --pareto" if cfg.multi_objective else ""
    print(f"next: sweep best --task {summary.task}{pareto} --tracking-uri {summary.tracking_uri}")
    return 0


EXIT_NOTHING_FINISHED = 1


def _no_trial_finished(summary: Any) -> int:
    """A sweep that finished no trial has failed: say why, exit non-zero."""
    reasons = list(dict.fromkeys(summary.failures))
    print(
        f"sweep {summary.name}: no trial finished ({summary.n_failed} failed); "
        + ("reasons: " + " | ".join(reasons[:3]) if reasons else "no failure was reported"),
        file=sys.stderr,
    )
    return EXIT_NOTHING_FINISHED


DEFAULT_COMPUTE_ALLOWANCE_USD = 1000.0


def cmd_grid(args: argparse.Namespace) -> int:
    from sweep import plots
    from sweep.results import finished_trials
    from sweep.tracking import Tracker
    from sweep.tuner import run_sweep

    if not args.resume and (not args.labels or args.unlabelled is None):
        raise UsageError(
            "missing --labels and --unlabelled (e.g. --labels 100,500 --unlabelled 0,1000)"
        )
    if args.budget is not None or args.seed_labels:
        raise UsageError(
            "a grid point buys its labels and pays its compute: it takes no --budget or "
            "--seed-labels (--compute-allowance caps each point's compute)"
        )
    allowance = args.compute_allowance
    if allowance is None and not args.resume:
        allowance = DEFAULT_COMPUTE_ALLOWANCE_USD
    if allowance is not None:  # a resumed grid keeps its own unless one is given
        if not allowance > 0:
            raise ValueError(
                f"`compute_allowance > 0` must hold, but got --compute-allowance {allowance!r}."
            )
        args.budget = allowance  # a grid sweep's budget is each point's compute allowance
    args.seed_labels = 0
    args.trials = len(args.labels or []) * len(args.unlabelled or []) or None
    if args.name is None and args.task:
        args.name = f"{args.task}-grid"
    cfg = sweep_config(args, grid=(args.labels or [], args.unlabelled or []))
    summary = run_sweep(cfg, resume=args.resume)
    if not summary.n_finished:
        return _no_trial_finished(summary)
    rows = finished_trials(Tracker(summary.tracking_uri), cfg.task, cfg.name)
    out = Path(args.out or cfg.report_dir)
    path = plots.grid(rows, out / f"{cfg.name}.png")
    table = write_replay_table(rows, out / f"{cfg.name}.csv")
    print(format_grid(rows))
    print(f"plot: {path}\nreplay table (for --objective replay): {table}")
    return 0


def write_replay_table(rows: list[Any], path: Path) -> Path:
    """The grid's results in the format `--objective replay --replay-table` reads."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["labels", "unlabelled", "compute_usd", "score"])
        for r in sorted(rows, key=lambda r: (r.n_labels_used, r.n_unlabelled)):
            writer.writerow([r.n_labels_used, int(r.n_unlabelled), r.compute_spent_usd, r.score])
    return path


def format_grid(rows: list[Any]) -> str:
    from sweep.results import pareto_set

    front = {r.run_id for r in pareto_set(rows)}
    header = ("labels", "unlabelled", "total $", "compute $", "compute share", "score", "front")
    table = [
        (
            str(r.n_labels_used),
            f"{r.n_unlabelled:.0f}",
            f"{r.practitioner_usd:.2f}",
            f"{r.compute_spent_usd:.2f}",
            f"{r.compute_spent_usd / r.practitioner_usd:.0%}" if r.practitioner_usd else "-",
            f"{r.score:.4f}",
            "*" if r.run_id in front else "",
        )
        for r in sorted(rows, key=lambda r: (r.n_labels_used, r.n_unlabelled))
    ]
    return format_table(header, table)


def cmd_frontier(args: argparse.Namespace) -> int:
    from sweep import frontier, plots
    from sweep.results import finished_trials

    for budget in args.budgets:
        if not budget > 0:
            raise ValueError(f"`budget_usd > 0` must hold, but got --budgets item {budget!r}.")
    tracker = _tracker(args)
    rows = [
        r
        for r in finished_trials(tracker, args.task)
        if args.sweep is None or r.sweep in args.sweep
    ]
    options = {"seed_labels": args.seed_labels, "pool_cap": args.max_unlabelled}
    try:
        model = frontier.fit(rows, args.task, **options)
        recs = [frontier.recommend(model, b) for b in args.budgets]
        check = (
            frontier.holdout(rows, args.task, args.holdout_budget, **options)
            if args.holdout_budget
            else None
        )
    except frontier.NotEnoughTrials as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    path = plots.frontier(model, args.budgets, rows, _out(args) / f"{args.task}_frontier.png")
    if args.json:
        print(json.dumps(frontier_json(model, recs, check, path), indent=2))
        return 0
    print(format_frontier(model, recs, check))
    print(f"plot: {path}")
    return 0


def frontier_json(model: Any, recs: list[Any], check: Any, path: Path) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "model": {
            "formula": model.curve.formula(),
            "curve": asdict(model.curve),
            "costs": asdict(model.costs),
            "n_trials": model.n_trials,
            "sweeps": list(model.sweeps),
            "held_out": asdict(model.held_out),
            "seed_labels": model.seed_labels,
        },
        "budgets": [r.to_dict() for r in recs],
        "holdout": None if check is None else asdict(check),
        "plot": str(path),
    }


def format_frontier(model: Any, recs: list[Any], check: Any) -> str:
    held = model.held_out
    lines = [
        f"{model.curve.formula()}  (L labels, U unlabelled)",
        f"fitted on {model.n_trials} trials of {', '.join(model.sweeps)}; leave-one-out "
        f"error {held.mae:.4f} mean, {held.max_error:.4f} worst (predicting the mean score: "
        f"{held.baseline_mae:.4f})",
        "",
    ]
    header = (
        "budget",
        "best f [90 %]",
        "labels",
        "unlabelled",
        "device-h",
        "spent",
        "predicted score [90 %]",
        "range",
    )
    table = [
        (
            f"${r.budget_usd:g}",
            "{:.2f} [{:.2f}, {:.2f}]".format(r.compute_fraction, *r.fraction_interval),
            f"{r.n_labels} (+{r.n_new_labels})",
            str(r.n_unlabelled),
            f"{r.device_hours:.4f}",
            f"${r.spent_usd:.2f}",
            f"{r.score:.4f} [{r.score_interval[0]:.4f}, {r.score_interval[1]:.4f}]",
            "inside" if r.inside else f"outside: {r.why_outside}",
        )
        for r in recs
    ]
    lines.append(format_table(header, table))
    if check is not None:
        rec = check.recommended
        lines += [
            "",
            f"held-out budget ${check.budget_usd:g} (its trials were left out of the fit):",
            *(
                f"  f={f:.3f}: predicted {p:.4f}, measured {m:.4f} (error {p - m:+.4f})"
                for f, p, m in check.rows
            ),
            f"  recommended f={rec.compute_fraction:.2f} predicted {rec.score:.4f}; best "
            f"measured f={check.measured_best_fraction:.3f} scored "
            f"{check.measured_best_score:.4f}",
            f"  measured at the recommended share: {check.measured_at_recommended:.4f}"
            if check.measured_at_recommended is not None
            else f"  no trial ran near f={rec.compute_fraction:.2f}; measure it with `sweep "
            f"trial --budget {check.budget_usd:g} --compute-fraction {rec.compute_fraction:.2f}`",
        ]
    return "\n".join(lines)


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default sqlite:///ROOT/mlflow.db)")
    parser.add_argument("--root", default=config.DEFAULT_ROOT, help="folder of the default stores")


def _out(args: argparse.Namespace) -> Path:
    """The folder for plots: --out, else `report/` under the store's root."""
    return Path(args.out) if args.out else Path(args.root).resolve() / "report"


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
    if args.pareto:
        return _print_pareto(args)
    rows = best_allocations(_tracker(args), args.task, args.budget, args.sweep)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    elif not rows:
        print("no finished trials match", file=sys.stderr)
    else:
        print(format_best(rows))
    return 0 if rows else 1


def _print_pareto(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sweep.results import finished_trials, format_trials, pareto_set

    rows = pareto_set(
        r
        for r in finished_trials(_tracker(args), args.task)
        if args.sweep is None or r.sweep in args.sweep
    )
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    elif rows:
        print(format_trials(rows))
    else:
        print("no finished trials match", file=sys.stderr)
    return 0 if rows else 1


def cmd_report(args: argparse.Namespace) -> int:
    from sweep import plots
    from sweep.results import finished_trials

    tracker = _tracker(args)
    rows = finished_trials(tracker, args.task)
    if not rows:
        raise ValueError(f"No finished trials of task={args.task!r} in {tracker.tracking_uri}.")
    paths = plots.all_plots(rows, _out(args))
    for sweep in sorted({r.sweep for r in rows}):
        parent = tracker.find_sweep_run(args.task, sweep)
        if parent is not None:
            for path in paths:
                tracker.log_artifact(parent, str(path))
    for path in paths:
        print(path)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from sweep import ui

    return int(ui.serve(_tracker(args), args.host, args.port, args.task, not args.no_browser))


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
    if not summary.n_finished:
        return _no_trial_finished(summary)
    from sweep.tracking import Tracker

    rows = best_allocations(Tracker(summary.tracking_uri), cfg.task, cfg.budget_usd)
    print(
        f"\ndemo: {summary.n_finished} trials finished, {summary.n_failed} failed, in "
        f"{time.perf_counter() - started:.0f} s; best allocation:"
    )
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
    run.set_defaults(func=cmd_run)

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
        help="most compute dollars one point may spend (1000); what it does not use is kept",
    )
    grid.add_argument("--out", help="folder for the grid plot (default ROOT/report)")
    grid.set_defaults(func=cmd_grid)

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
    frontier.set_defaults(func=cmd_frontier)

    best = sub.add_parser("best", help="best allocation per task and budget (reads MLflow)")
    best.add_argument("--task")
    best.add_argument("--budget", type=float, metavar="USD")
    best.add_argument("--sweep", action="append", metavar="NAME", help="these sweeps only")
    best.add_argument(
        "--pareto", action="store_true", help="the trials no cheaper trial beats (score, $)"
    )
    best.add_argument("--json", action="store_true")
    _add_store_options(best)
    best.set_defaults(func=cmd_best)

    report = sub.add_parser("report", help="PNG plots of a task's trials, logged to MLflow")
    report.add_argument("--task", required=True)
    report.add_argument("--out", help="folder for the PNGs (default ROOT/report)")
    _add_store_options(report)
    report.set_defaults(func=cmd_report)

    ui = sub.add_parser("ui", help="start the MLflow UI on the store, print its runs' links")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--task", help="this task's runs only (default: every task in the store)")
    ui.add_argument(
        "--no-browser", action="store_true", help="print the links, open no browser window"
    )
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
