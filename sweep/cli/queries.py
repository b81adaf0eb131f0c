"""The commands that read what sweeps left (`sweep tasks`, `best`, `frontier`, `report`,
`ui`, `doctor`): they start no Ray and train nothing (except `sweep doctor --learn`, which
trains one small teacher and student to see whether the recipe learns)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from objectives.data import check_data_dir, data_source, load_task_data
from objectives.tasks import get_task, task_names
from sweep import config
from sweep.tables import format_table


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


def cmd_frontier(args: argparse.Namespace) -> int:
    from sweep.decide import frontier, plots
    from sweep.tracking.results import finished_trials, learned_rows

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
    try:
        cost = get_task(args.task).cost_model
    except ValueError:  # a task file's task: its trials price it
        cost = None
    options = {"seed_labels": args.seed_labels, "pool_cap": args.max_unlabelled, "cost": cost}
    learned = learned_rows(rows)  # the posterior weighs what learned
    if len(learned) < len(rows):
        print(
            f"sweep frontier: left out {len(rows) - len(learned)} of {len(rows)} trials of "
            f"{args.task} that do not beat their trivial baseline beyond noise",
            file=sys.stderr,
        )
    try:
        model = frontier.fit(learned, args.task, **options)
        recs = [frontier.recommend(model, b) for b in args.budgets]
        check = (
            frontier.holdout(learned, args.task, args.holdout_budget, **options)
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
    check_known_task(getattr(args, "task", None), tracker)
    return tracker


def check_known_task(task: str | None, tracker: Any) -> None:
    """A task the registry or the store knows (a `--task-file` task has its own experiment);
    else one line naming the valid ones."""
    from objectives.tasks import BUILTIN_TASKS

    known = {*BUILTIN_TASKS, *tracker.experiments()}
    if task is not None and task not in known:
        raise ValueError(f"Unknown task={task!r}; valid tasks: {', '.join(sorted(known))}.")


def cmd_best(args: argparse.Namespace) -> int:
    from sweep.decide import evidence
    from sweep.tracking.results import best_allocations, finished_trials, format_best

    if args.budget is not None and args.budget <= 0:
        raise ValueError(f"`budget_usd > 0` must hold, but got budget_usd={args.budget!r}.")
    if args.pareto:
        return _print_pareto(args)
    tracker = _tracker(args)
    rows = best_allocations(tracker, args.task, args.budget, args.sweep)
    # Each task's trials read once, not once per budget answered.
    trials = {task: finished_trials(tracker, task) for task in {r.task for r in rows}}
    answers = [evidence.answer_at(tracker, r, trials=trials[r.task]) for r in rows]
    if args.json:
        out = [
            {**r.to_dict(), "posterior": a.to_dict() if a is not None else None}
            for r, a in zip(rows, answers, strict=True)
        ]
        print(json.dumps(out, indent=2))
    elif not rows:
        print("no finished trials match", file=sys.stderr)
    else:
        print(format_best(rows))
        print(format_answers(rows, answers))
    return 0 if rows else 1


def answer_line(tracking_uri: str, task: str, budget_usd: float, sweep: str) -> str:
    """The sweep's answer in one line, as `sweep best` gives it: the posterior's share, what
    it buys and how much of B it spends."""
    from sweep.decide import evidence
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.results import best_allocations

    tracker = Tracker(tracking_uri)
    bests = best_allocations(tracker, task, budget_usd, [sweep])
    answer = evidence.answer_at(tracker, bests[0]) if bests else None
    if answer is None:
        return "answer: none yet (no trial learned anything); see sweep best"
    low, high = answer.fraction_interval
    return (
        f"answer: spend {100 * answer.compute_fraction:.0f} % of ${budget_usd:g} on compute (90 % "
        f"range {low:.2f} to {high:.2f}): {answer.n_labels} labels, {answer.n_unlabelled} "
        f"distilled, ${answer.spent_usd:.2f} of ${budget_usd:g} spent; expected regret "
        f"{100 * answer.expected_regret:.2f} points (the landscape posterior, every trial weighed)"
    )


def format_answers(rows: list[Any], answers: list[Any]) -> str:
    """The posterior's answer per budget, beside the best trial's table."""
    header = ("task", "budget", "seed", "posterior f [90 %]", "labels", "unlabelled",
              "spends", "predicted score [90 %]", "expected regret")  # fmt: skip
    table = [
        (
            r.task, f"${r.budget_usd:g}", str(r.n_seed_labels),
            "{:.2f} [{:.2f}, {:.2f}]".format(a.compute_fraction, *a.fraction_interval),
            str(a.n_labels), str(a.n_unlabelled),
            f"${a.spent_usd:.2f} of ${r.budget_usd:g}",
            f"{a.score:.4f} [{a.score_interval[0]:.4f}, {a.score_interval[1]:.4f}]",
            f"{100 * a.expected_regret:.2f} points",
        )
        for r, a in zip(rows, answers, strict=True)
        if a is not None
    ]  # fmt: skip
    if not table:
        return "the posterior's answer: none (no trial learned anything)"
    notes = [
        f"{r.task} ${r.budget_usd:g}: {a.why_outside}"
        for r, a in zip(rows, answers, strict=True)
        if a is not None and not a.inside
    ]
    return "\n".join(
        [
            "the posterior's answer (every trial of the task with the same recipe, each "
            "weighed by its noise; not the single best trial, whose score is optimistic):",
            format_table(header, table),
            *notes,
        ]
    )


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
    if args.learn:
        if not args.task:
            raise ValueError("--learn needs --task T: the task whose recipe is checked.")
        for name in names:
            cfg = _learn_config(args, name)
            checks += doctor.check_learning(get_task(name, extra), cfg)
    elif args.task:
        names_shown = " ".join(f"--task {n}" for n in names)
        print(
            f"does this recipe learn here? `sweep doctor {names_shown} --learn` trains two models"
        )
    print(doctor.format_checks(checks))
    failed = [c for c in checks if c.failed]
    if failed:
        print(f"sweep doctor: {len(failed)} check(s) failed: {failed[0].name}", file=sys.stderr)
        return 1
    return 0


def _learn_config(args: argparse.Namespace, task: str) -> Any:
    """The TrialConfig `sweep doctor --learn` trains with: the recipe (preset and the
    model options given), the seed labels and nothing bought (all of a token budget is
    compute, which the check does not meter)."""
    from objectives.tasks import load_task_file
    from objectives.trial_config import trial_config
    from sweep.cli.options import choose_preset

    if args.seed_labels < 1:
        raise ValueError(f"`seed_labels >= 1` must hold, but got --seed-labels {args.seed_labels}.")
    files = {load_task_file(f).name: str(Path(f).resolve()) for f in args.task_file or []}
    recipe = ("teacher", "student", "teacher_epochs", "student_epochs", "teacher_lr", "student_lr")
    fields: dict[str, Any] = {
        "task": task,
        "budget_usd": 0.01,
        "compute_fraction": 1.0,
        "n_seed_labels": args.seed_labels,
        "data_dir": args.data_dir,
        **({"task_file": files[task]} if task in files else {}),
        **{k: getattr(args, k) for k in recipe if getattr(args, k) is not None},
    }
    return trial_config(fields, choose_preset(args.preset))
