"""`sweep`: the entry point, and the commands that do work (`trial`, `run`, `grid`, `plan`,
`demo`; the queries are in `queries`). User errors become one line on stderr and exit code
2; a sweep that finished nothing, exit code 1."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from objectives.budget import Budget
from objectives.data import load_task_data, local_data
from objectives.tasks import get_task, with_teacher_fixed_usd
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
from sweep.cli.queries import (
    answer_line,
    cmd_best,
    cmd_doctor,
    cmd_frontier,
    cmd_report,
    cmd_tasks,
    cmd_ui,
)
from sweep.engine.progress import TrialProgress

EXIT_USAGE = 2


def cmd_trial(args: argparse.Namespace) -> int:
    from objectives.trial_config import trial_config

    file_cfg, fields = trial_settings(args)
    require(fields, "task", "budget_usd", "n_seed_labels", "compute_fraction")
    named = args.preset or file_cfg.get("preset")
    # Bad values are refused before the recipe's notice is printed and torch is imported.
    trial_config(fields, named or "cpu-small")
    cfg = trial_config(fields, choose_preset(named, sys.stderr if args.json else None))
    from objectives.distill_or_annotate import run_trial

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
        f" {_highest(summary)} (the answer, with noise and trivial baselines weighed:"
        " sweep best)"
    )
    if not summary.n_finished:
        return _no_trial_finished(summary)
    if not cfg.multi_objective:
        print(answer_line(summary.tracking_uri, cfg.task, cfg.budget_usd, summary.name))
    pareto = ["--sweep", summary.name, "--pareto"] if cfg.multi_objective else []
    best = ["sweep", "best", "--task", summary.task, *pareto, "--tracking-uri", cfg.tracking]
    print(f"next: {shlex.join(best)}")
    return 0


def _highest(summary: Any) -> str:
    """The best trial's score and point, rounded as `sweep best` rounds them."""
    if summary.best_score is None:
        return "highest score -"

    def shown(name: str, value: Any) -> str:
        if name == "compute_fraction":
            return f"{float(value):.3f}"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    point = ", ".join(f"{k}={shown(k, v)}" for k, v in summary.best_params.items())
    return f"highest score {summary.best_score:.4f} with {point or 'the defaults'}"


EXIT_NOTHING_FINISHED = 1


def _no_trial_finished(summary: Any) -> int:
    """A sweep that finished no trial has failed: say why, exit non-zero."""
    reasons = list(dict.fromkeys(summary.failures))
    why = "reasons: " + " | ".join(reasons[:3]) if reasons else "no failure was reported"
    if summary.stopped and not reasons:  # e.g. the spending cap refused the first trial
        why = summary.stopped
    print(
        f"sweep {summary.name}: no trial finished ({summary.n_failed} failed); {why}",
        file=sys.stderr,
    )
    return EXIT_NOTHING_FINISHED


def cmd_grid(args: argparse.Namespace) -> int:
    from objectives import standins
    from sweep.decide import plots
    from sweep.engine.tuner import run_sweep
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials, format_grid

    cfg = grid_config(args)
    summary = run_sweep(cfg, resume=args.resume)
    if not summary.n_finished:
        return _no_trial_finished(summary)
    rows = finished_trials(Tracker(summary.tracking_uri), cfg.task, cfg.name)
    out = Path(args.out or cfg.report_dir)
    path = plots.grid(rows, out / f"{cfg.name}.png")
    table = standins.write_replay_table(rows, out / f"{cfg.name}.csv")
    print(format_grid(rows))
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
    """The most labels a pilot can buy: the rows of the task's training split (for a
    stand-in, where its files are on this machine: its sweeps refuse more, as real ones)."""
    if (args.objective or "real") != "real" and not local_data(spec, args.data_dir):
        return None
    return len(load_task_data(spec, args.data_dir).train)


def _plan_prices(args: argparse.Namespace, spec: Any) -> Any:
    """The compute prices that price B: the task's cost model, in the paper's dollars (a
    share of B is only a split once its compute is priced in advance)."""
    if args.meter not in (None, "paper"):
        raise UsageError(
            f"sweep plan prices B with the task's compute cost model (--meter paper), but got "
            f"--meter {args.meter}: a {args.meter} meter is only known once trials have run"
        )
    args.meter = "paper"  # the pilots are charged in the meter that prices B
    if spec.cost_model is None:
        raise UsageError(
            f"task {spec.name!r} has no compute cost model; give its task file a [cost_model] "
            "(a_usd, b_usd_per_1k_labelled, d_usd_per_1k_unlabelled) to plan its split"
        )
    return with_teacher_fixed_usd(spec, args.a_usd).cost_model


def _landscapes(paths: Sequence[str] | None) -> Any:
    """The shipped landscapes, and any measured grid the user adds with --landscape."""
    if not paths:
        return None
    from objectives.standins import ReplayTable
    from sweep.decide import prior

    extra = tuple(prior.Known(Path(p).stem, ReplayTable.from_csv(p)) for p in paths)
    return prior.shipped() + extra


def cmd_plan(args: argparse.Namespace) -> int:
    from sweep.decide import plan
    from sweep.engine.pilots import run_plan
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import finished_trials, how_priced, learned_rows, priced_like

    book = plan_options(args)
    missing = [name for name in ("task", "budget") if getattr(args, name) is None]
    if missing:  # a single --task-file names its task
        raise UsageError(
            f"missing {' and '.join(f'--{m}' for m in missing)}, or "
            f"{' and '.join(missing)} in --config (e.g. --task bbc_news --budget 8)"
        )
    if not args.budget > 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got --budget {args.budget!r}.")
    Budget(args.budget)  # and no more than the largest budget
    max_spend = args.max_spend if args.max_spend is not None else 0.1 * args.budget
    spec = get_task(args.task, config.user_tasks(args.task_file))
    settings = plan.PlanSettings(
        task=args.task,
        budget_usd=args.budget,
        seed_labels=args.seed_labels or 0,
        usd_per_label=book.label_price(args.task),
        max_spend_usd=max_spend,
        cost=_plan_prices(args, spec),
        pool_cap=_pool_cap(args),
        label_cap=_label_cap(args, spec),
        pilots=args.pilots != 0,
        max_pilots=args.pilots if args.pilots is not None else plan.PlanSettings.max_pilots,
        landscapes=_landscapes(args.landscape),
    )
    root = args.root or config.DEFAULT_ROOT
    uri = args.tracking_uri or config.default_tracking(root)
    store = config.store_path(uri)
    readable = store is None or store.is_file()  # never create a store just to read it
    tracker = Tracker(uri) if readable and not args.fresh else None
    stored = finished_trials(tracker, args.task) if tracker and not args.fresh else []
    # One landscape, one pricing: the stored trials priced as this plan's pilots will be.
    mine = (args.objective or "real", args.meter or "estimated")
    sweeps = how_priced(tracker, args.task, (r.sweep for r in stored)) if tracker else {}
    alike = [r for r in stored if sweeps[r.sweep] == mine]
    priced = priced_like(alike, settings.usd_per_label, book.usd_per_device_hour)[0]
    known = learned_rows(priced)  # the posterior weighs what learned
    if len(known) < len(priced):
        print(
            f"sweep plan: left out {len(priced) - len(known)} stored trials of {args.task} "
            "that do not beat their trivial baseline beyond noise",
            file=sys.stderr,
        )
    if len(priced) < len(stored):
        print(
            f"sweep plan: left out {len(stored) - len(priced)} stored trials of {args.task} "
            f"priced otherwise than this plan (${settings.usd_per_label:g} a label, "
            f"${book.usd_per_device_hour:g} a device-hour, objective {mine[0]}, meter {mine[1]})",
            file=sys.stderr,
        )
    result = run_plan(settings, _pilot_base(args), known)
    print(plan.format_plan(result))
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
    rows = best_allocations(summary.tracking_uri, cfg.task, cfg.budget_usd)
    print(
        f"\ndemo: {summary.n_finished} trials finished, {summary.n_failed} failed, in "
        f"{time.perf_counter() - started:.0f} s; best allocation:"
    )
    print(format_best(rows))
    print(answer_line(summary.tracking_uri, cfg.task, cfg.budget_usd, cfg.name))
    ui = shlex.join(["sweep", "ui", "--root", cfg.root])
    report = shlex.join(["sweep", "report", "--task", cfg.task, "--root", cfg.root])
    print(f"\nopen the trials: {ui}    plots: {report}")
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
    except OSError as exc:  # a folder that cannot be written, a full disk: one line too
        logging.getLogger(__name__).info("the error's traceback (-v)", exc_info=True)
        print(f"sweep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        if argv is None:  # a program: one more Ctrl-C while it exits must not kill it silently
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"sweep: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
