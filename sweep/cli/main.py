"""`sweep`: the command line's commands. User errors become one line on stderr and exit
code 2; a sweep that finished nothing, exit code 1."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
from objectives.trial_config import format_result
from sweep import config
from sweep.cli.options import (
    choose_preset,
    grid_config,
    plan_options,
    require,
    sweep_config,
    trial_settings,
)
from sweep.cli.parser import UsageError, build_parser
from sweep.engine.progress import TrialProgress
from sweep.tables import format_table

if TYPE_CHECKING:
    from sweep.decide.frontier import Shape
    from sweep.tracking.results import TrialRow

EXIT_USAGE = 2


def cmd_tasks(args: argparse.Namespace) -> int:
    check_data_dir(args.data_dir)
    extra = config.user_tasks(args.task_file)
    file_cfg = config.read_config_file(args.config)
    book = config.book_from(args, file_cfg, extra)
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
            "learns_offline": spec.offline,
        }
        try:
            entry["source"] = data_source(spec, args.data_dir)
            if entry["source"].startswith("hf:"):  # listing never downloads a data set
                entry["source"] += " (downloaded by the first trial)"
                rows.append(entry)
                continue
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
    header = ("task", "metric", "$/label", "rows train/dev/test", "data source", "learns offline")
    table = [
        (
            r["name"],
            r["metric"],
            f"{r['usd_per_label']:.3f}",
            "/".join(str(r["rows"].get(s, 0)) for s in ("train", "dev", "test"))
            if r["rows"]
            else "-",
            r["source"],
            r["learns_offline"],
        )
        for r in rows
    ]
    print(format_table(header, [[str(cell) for cell in row] for row in table]))
    print(f"compute: ${book.usd_per_device_hour:.3f} per device-hour")
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    from objectives.distill_or_annotate import run_trial
    from objectives.trial_config import trial_config

    file_cfg, fields = trial_settings(args)
    require(fields, "task", "budget_usd", "n_seed_labels", "compute_fraction")
    named = args.preset or file_cfg.get("preset")
    cfg = trial_config(fields, choose_preset(named, sys.stderr if args.json else None))
    result = run_trial(cfg, report=TrialProgress())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(format_result(result.to_dict()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sweep.engine.tuner import run_sweep

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


def cmd_grid(args: argparse.Namespace) -> int:
    from objectives import standins
    from sweep.decide import plots
    from sweep.engine.tuner import run_sweep
    from sweep.tracking import results
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials

    cfg = grid_config(args)
    summary = run_sweep(cfg, resume=args.resume)
    if not summary.n_finished:
        return _no_trial_finished(summary)
    rows = finished_trials(Tracker(summary.tracking_uri), cfg.task, cfg.name)
    out = Path(args.out or cfg.report_dir)
    path = plots.grid(rows, out / f"{cfg.name}.png")
    table = standins.write_replay_table(rows, out / f"{cfg.name}.csv")
    print(results.format_grid(rows))
    print(f"plot: {path}\nreplay table (for --objective replay): {table}")
    return 0


def _pilot_base(args: argparse.Namespace) -> config.SweepConfig:
    """The grid config `sweep plan`'s pilots are derived from: this command's task, stores,
    recipe and prices (its grid point and allowance are each round's own)."""
    ns = argparse.Namespace(**vars(args))
    ns.name, ns.budget, ns.seed_labels, ns.resume = f"{args.task}-plan", None, 0, False
    ns.labels, ns.unlabelled, ns.compute_allowance, ns.max_spend = [1], [0], 1.0, None
    return grid_config(ns)


def _pool_cap(args: argparse.Namespace) -> int | None:
    """The most unlabelled examples a trial may use: --max-unlabelled, else the recipe's."""
    if args.max_unlabelled is not None or (args.objective or "real") != "real":
        return args.max_unlabelled  # type: ignore[no-any-return]
    import io

    from objectives.trial_config import PRESETS

    # The sweeps print the recipe's notice themselves.
    cap = PRESETS[choose_preset(args.preset, io.StringIO())].get("max_unlabelled")
    return int(cap) if cap is not None else None


def _label_cap(args: argparse.Namespace, spec: Any) -> int | None:
    """The most labels a real pilot can buy: the rows of the task's training split."""
    if (args.objective or "real") != "real":
        return None
    from objectives.data import load_task_data

    return len(load_task_data(spec, args.data_dir).train)


def cmd_plan(args: argparse.Namespace) -> int:
    from sweep.decide import plan
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials, how_priced, priced_like

    book = plan_options(args)
    if args.task is None or args.budget is None:
        raise UsageError(
            "missing --task and --budget, or task and budget in --config "
            "(e.g. --task bbc_news --budget 8)"
        )
    if not args.budget > 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got --budget {args.budget!r}.")
    max_spend = args.max_spend if args.max_spend is not None else 0.1 * args.budget
    spec = get_task(args.task, config.user_tasks(args.task_file))
    settings = plan.PlanSettings(
        task=args.task,
        budget_usd=args.budget,
        seed_labels=args.seed_labels or 0,
        usd_per_label=book.label_price(args.task),
        max_spend_usd=max_spend,
        cost=spec.cost_model if args.meter == "paper" else None,  # else fitted to pilots
        pool_cap=_pool_cap(args),
        label_cap=_label_cap(args, spec),
    )
    root = args.root or config.DEFAULT_ROOT
    uri = args.tracking_uri or config.default_tracking(root)
    store = config.store_path(uri)
    readable = store is None or store.is_file()  # never create a store just to read it
    tracker = Tracker(uri) if readable and (args.shape_from or not args.fresh) else None
    if args.shape_from:
        if tracker is not None:
            _known_task(args.shape_from, tracker)
        rows = finished_trials(tracker, args.shape_from) if tracker else []
        settings = dataclasses.replace(settings, shape=_shape(args.shape_from, rows, uri))
    stored = finished_trials(tracker, args.task) if tracker and not args.fresh else []
    # One curve, one pricing: the stored trials priced as this plan's pilots will be.
    mine = (args.objective or "real", args.meter or "estimated")
    sweeps = how_priced(tracker, args.task, (r.sweep for r in stored)) if tracker else {}
    alike = [r for r in stored if sweeps[r.sweep] == mine]
    known = priced_like(alike, settings.usd_per_label, book.usd_per_device_hour)[0]
    if len(known) < len(stored):
        print(
            f"sweep plan: left out {len(stored) - len(known)} stored trials of {args.task} "
            f"priced otherwise than this plan (${settings.usd_per_label:g} a label, "
            f"${book.usd_per_device_hour:g} a device-hour, objective {mine[0]}, meter {mine[1]})",
            file=sys.stderr,
        )
    from sweep.engine.pilots import run_plan

    result = run_plan(settings, _pilot_base(args), known)
    print(plan.format_plan(result))
    return 0 if result.recommendation is not None else EXIT_NOTHING_FINISHED


def _shape(task: str, rows: Sequence[TrialRow], uri: str) -> Shape:
    """The curve shape of a finished task, for `sweep plan --warm-start`."""
    from sweep.decide import frontier
    from sweep.tracking.results import priced_like, usual_pricing

    # A shape needs one curve, so one pricing: the one most of TASK's trials had.
    rows = priced_like(rows, *usual_pricing(rows))[0]
    try:
        return frontier.fit_shape(rows, task)
    except frontier.NotEnoughTrials as exc:
        raise ValueError(f"--warm-start {task!r} in {uri}: {exc}") from None


def cmd_frontier(args: argparse.Namespace) -> int:
    from sweep.decide import frontier, plots
    from sweep.tracking.results import finished_trials

    for budget in args.budgets:
        if not budget > 0:
            raise ValueError(f"`budget_usd > 0` must hold, but got --budgets item {budget!r}.")
    if args.holdout_budget is not None and not args.holdout_budget > 0:
        raise ValueError(
            f"`holdout_budget > 0` must hold, but got holdout_budget={args.holdout_budget!r}."
        )
    for name in ("seed_labels", "max_unlabelled"):
        if (getattr(args, name) or 0) < 0:
            raise ValueError(f"`{name} >= 0` must hold, but got {name}={getattr(args, name)}.")
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
            if args.holdout_budget is not None
            else None
        )
    except frontier.NotEnoughTrials as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    path = plots.frontier(model, args.budgets, rows, _out(args) / f"{args.task}_frontier.png")
    if args.json:
        print(json.dumps(frontier.frontier_json(model, recs, check, path), indent=2))
        return 0
    print(frontier.format_frontier(model, recs, check))
    print(f"plot: {path}")
    return 0


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
    from sweep.tracking.mlflow_store import Tracker

    tracker = Tracker(uri)
    _known_task(getattr(args, "task", None), tracker)
    return tracker


def _known_task(task: str | None, tracker: Any) -> None:
    """A task the registry or the store knows (a `--task-file` task has its own experiment);
    else one line naming the valid ones."""
    from objectives.tasks import BUILTIN_TASKS

    known = {*BUILTIN_TASKS, *tracker.experiments()}
    if task is not None and task not in known:
        raise ValueError(f"Unknown task={task!r}; valid tasks: {', '.join(sorted(known))}.")


def cmd_best(args: argparse.Namespace) -> int:
    from sweep.tracking.results import best_allocations, format_best

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

    from sweep.tracking.results import finished_trials, format_trials, pareto_set

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
    from sweep.decide import plots
    from sweep.tracking.results import finished_trials

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
    from sweep.cli import ui

    return int(ui.serve(_tracker(args), args.host, args.port, args.task, not args.no_browser))


def cmd_doctor(args: argparse.Namespace) -> int:
    from cluster import ray_address
    from sweep.cli import doctor

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

    from sweep.cli.demo import demo_config
    from sweep.engine.tuner import run_sweep
    from sweep.tracking.optuna_store import stored_config
    from sweep.tracking.results import best_allocations, format_best

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
    from sweep.tracking.mlflow_store import Tracker

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
COMMANDS: dict[str, Command] = {
    "tasks": cmd_tasks,
    "trial": cmd_trial,
    "run": cmd_run,
    "grid": cmd_grid,
    "plan": cmd_plan,
    "frontier": cmd_frontier,
    "best": cmd_best,
    "report": cmd_report,
    "ui": cmd_ui,
    "doctor": cmd_doctor,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args = build_parser().parse_args(argv)
        if args.verbose:
            for package in ("objectives", "search_spaces", "cluster", "sweep"):
                logging.getLogger(package).setLevel(logging.INFO)
        return COMMANDS[args.command](args)
    except ValueError as exc:  # UsageError included: every user error is a ValueError
        print(f"sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"sweep: {exc or 'interrupted'}", file=sys.stderr)
        return 130
