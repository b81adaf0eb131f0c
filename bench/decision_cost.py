"""Benchmark 8: what each method spends deciding the split at budget B, as a share of B.

Decision cost = the compute a method really spends (the sweep ledger: teachers, soft labels,
distillation; labels are drawn from rows the user owns and cost the sweep nothing) before
its recommendation scores within 1 point of the best split at B. The best split comes from a
dense reference: every share from 0 to 1 in steps of 0.005 on the same landscape.

Methods:
  grid:          the paper's shares 0.0, 0.1, ..., 1.0 in order, full-size trials at B;
  plain TPE:     Optuna's TPESampler over the share, full-size trials at B;
  default sweep: `sweep run`'s search (annotate only, 1, 0.5, then TPE), full-size trials;
  steered:       the default sweep with the learning curve as its surrogate once the
                 trials carry one (Thompson sampling over the curve's bootstrap fits);
                 printed on its own line (the last line keeps the issue's format);
  ours:          `sweep plan` (sweep/decide/plan.py): cheap pilots, the learning curve, more pilots
                 where its interval is widest, stopping by its own rule.
The three full-size searches are stopped by an oracle the moment their best trial is within
1 point (favourable to them: a user could not know when); ours stops by its own rule and is
then checked, so its figure is what a user would get. Searches that never get there within
`--max-trials` are shown with ">".

Landscape: a replay table (`--replay-table FILE`, any grid CSV in the replay format: labels,
unlabelled, compute_usd, score) with its setting from `--task/--budget/--seed-labels/
--usd-per-label` or the table's `.json`; compute dollars come from the table's fitted cost
model (`objectives.standins.ReplayTable`). Default: `bench/data/fever_synthetic_grid.csv`,
B = $300, 100 seed labels. Mechanisms can be switched off to show their share:
`--no-reuse` (a teacher is paid for every pilot), `--no-refine` (first round only),
`--no-ceiling` (no teacher cap; replay tables without teacher scores have none anyway),
`--no-effective-data` (the curve without the `L + w U` term, as `sweep frontier` had it).
`--warm-start-table FILE` gives ours a prior, as `sweep plan --warm-start TASK` does: the
curve's shape (alpha, w) fitted to every point of another task's table, so its first round
needs one teacher and five pilots instead of two teachers and eight. `--max-spend-share S`
sets ours' cap as a share of B (default 0.10, the target).

    python bench/decision_cost.py [--replay-table FILE --budget B --seed-labels N]
                                  [--warm-start-table FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.standins import ReplayTable, replay_trial
from objectives.trial_config import TrialConfig, TrialResult
from search_spaces import get_space
from search_spaces.spaces import PAPER_FRACTIONS
from sweep.decide import frontier
from sweep.decide.plan import Pilot, Plan, PlanSettings, Ran, Runner, plan, plan_spent_usd
from sweep.engine.spend import SpendLedger
from sweep.tracking.results import row_from_result

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_TABLE = DATA / "fever_synthetic_grid.csv"
WITHIN = 0.01  # one point of score
REFERENCE = [i / 200 for i in range(201)]


class Landscape:
    """Full-size trials at B, and pilots as grid points, on one task; `at` is memoised."""

    setting: dict[str, Any]
    budget: float
    reference: list[float]

    def __init__(self, setting: dict[str, Any], reference: list[float]) -> None:
        self.setting = setting
        self.budget = float(setting["budget_usd"])
        self.reference = reference
        self._cache: dict[float, TrialResult] = {}
        scores = [self.at(f).score for f in reference]
        self.best = max(scores)
        self.best_fraction = reference[scores.index(self.best)]
        self.annotate_only = scores[0]

    def at(self, fraction: float) -> TrialResult:
        fraction = min(self.reference, key=lambda f: abs(f - fraction))
        if fraction not in self._cache:
            self._cache[fraction] = self.full(fraction)
        return self._cache[fraction]

    def full(self, fraction: float) -> TrialResult:
        raise NotImplementedError

    def pilot(self, p: Pilot, allowance_usd: float) -> TrialResult:
        raise NotImplementedError

    def teacher_usd(self, n_labels: int) -> float:
        """What a reused teacher would have cost (0: the runner's ledger already knows)."""
        return 0.0

    def spent(self, result: TrialResult) -> float:
        return result.compute_spent_usd

    def grid_point(self, p: Pilot, allowance_usd: float) -> dict[str, Any]:
        price = float(self.setting["usd_per_label"])
        return {
            "budget_usd": p.n_labels * price + (allowance_usd if p.n_unlabelled else 0.0),
            "n_seed_labels": 0,
            "compute_fraction": 0.0,
            "n_labels": p.n_labels,
            "max_unlabelled": p.n_unlabelled or None,
        }


class Replay(Landscape):
    """A replay table: compute dollars from its fitted cost model, no student cost."""

    def __init__(self, table: ReplayTable, setting: dict[str, Any]) -> None:
        self.table = table
        super().__init__(setting, REFERENCE)

    def full(self, fraction: float) -> TrialResult:
        return replay_trial(
            TrialConfig(**self.setting, compute_fraction=fraction), table=self.table
        )

    def pilot(self, p: Pilot, allowance_usd: float) -> TrialResult:
        full = self.table.cost.usd(p.n_labels, p.n_unlabelled) + 1e-6
        point = self.grid_point(p, min(full, allowance_usd))
        return replay_trial(TrialConfig(**{**self.setting, **point}), table=self.table)

    def teacher_usd(self, n_labels: int) -> float:
        return self.table.cost.teacher_usd(n_labels)


class Real(Landscape):
    """The demo's real objective (bbc_news, B = $8, 30 seed labels, `cpu-small`, $75 per
    device-hour): each trial trains for real and its sweep ledger is what it spent. Full-size
    trials run without the stage cache (each pays its own way, as a fresh sweep's would) on
    shares 0, 0.1, ..., 1 (the searches' shares are rounded to them), saved to
    `reference_path` so that a rerun only runs the pilots; pilots share one cache, as
    `sweep plan`'s do."""

    def __init__(self, work: Path, reference_path: Path) -> None:
        from sweep.cli.demo import demo_config

        self.cfg = demo_config(root=str(work))
        self.work = work
        self.reference_path = reference_path
        self.saved: dict[str, dict[str, Any]] = (
            json.loads(reference_path.read_text()) if reference_path.is_file() else {}
        )
        setting = {"task": self.cfg.task, "budget_usd": self.cfg.budget_usd,
                   "n_seed_labels": self.cfg.n_seed_labels, **self.cfg.trial}  # fmt: skip
        super().__init__(setting, [i / 10 for i in range(11)])

    def _run(self, fields: dict[str, Any], cache: bool) -> TrialResult:
        from objectives.distill_or_annotate import run_trial
        from objectives.trial_config import trial_config
        from sweep.engine.trainable import base_fields

        base = base_fields(self.cfg, 0.0, 0)
        base.update(fields, cache_dir=str(self.work / "cache") if cache else None, n_threads=2)
        return run_trial(trial_config(base, self.cfg.preset))

    def full(self, fraction: float) -> TrialResult:
        key = f"{fraction:.2f}"
        if key not in self.saved:
            result = self._run({"compute_fraction": fraction}, cache=False)
            self.saved[key] = result.to_dict()
            self.reference_path.parent.mkdir(parents=True, exist_ok=True)
            self.reference_path.write_text(json.dumps(self.saved, indent=1))
            print(f"  reference f={key}: score {result.score:.4f}, spent "
                  f"${result.sweep_spent_usd:.3f}", flush=True)  # fmt: skip
        return TrialResult(**self.saved[key])

    def pilot(self, p: Pilot, allowance_usd: float) -> TrialResult:
        return self._run(self.grid_point(p, allowance_usd), cache=True)

    def spent(self, result: TrialResult) -> float:
        return result.sweep_spent_usd


# --- full-size searches --------------------------------------------------------------------


def _until_within(land: Landscape, shares: Callable[[], float | None], cap: int) -> float | None:
    """Compute spent (share of B) when the best trial so far is within a point; None: never."""
    spent, best = 0.0, -1.0
    for _ in range(cap):
        fraction = shares()
        if fraction is None:
            break
        result = land.at(fraction)
        spent += land.spent(result)
        best = max(best, result.score)
        if best >= land.best - WITHIN:
            return spent / land.budget
    return None


def grid_cost(land: Landscape, cap: int) -> float | None:
    order = iter(PAPER_FRACTIONS)
    return _until_within(land, lambda: next(order, None), cap)


def _study(method: str, seed: int, cap: int) -> tuple[Any, Callable[[Any], Any]]:
    """A study searching the share the way `method` does, and its search space."""
    import optuna

    from sweep.config import SweepConfig
    from sweep.engine.tuner import first_points, make_sampler

    if method == "plain TPE":
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        return study, lambda t: t.suggest_float("compute_fraction", 0, 1)
    cfg = SweepConfig(
        name="bench", task="fever", budget_usd=1.0, n_seed_labels=0, n_trials=cap,
        sampler_seed=seed,
    )  # fmt: skip
    study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg, 0))
    for params in first_points(cfg):
        study.enqueue_trial(params)
    return study, get_space(cfg.space_name)


def optuna_cost(
    land: Landscape, method: str, seed: int, cap: int, shape: frontier.Shape | None = None
) -> tuple[float | None, int]:
    """Full-size trials as `method` suggests them. "steered": the default sweep with the
    learning curve as its surrogate: once the trials so far carry a curve (8 of them; 5 with a
    warm start's `shape`), each next share is the best share of one of its bootstrap fits,
    drawn at random (Thompson sampling); the default sweep's own suggestion until then.
    Returns the cost (as `_until_within`) and how many trials the curve chose."""
    import numpy as np

    study, space = _study("default sweep" if method == "steered" else method, seed, cap)
    rows: list[Any] = []
    steered: list[float] = []
    draw = np.random.default_rng(seed)

    def next_share() -> float:
        steer = _curve_share(land, rows, shape, draw) if method == "steered" else None
        if steer is not None:
            steered.append(steer)
            study.enqueue_trial({"compute_fraction": steer})
        trial = study.ask()
        space(trial)
        fraction = float(trial.params["compute_fraction"])
        result = land.at(fraction)
        rows.append(row_from_result(result, f"trial-{len(rows)}", land.spent(result)))
        study.tell(trial, result.score)
        return fraction

    return _until_within(land, next_share, cap), len(steered)


def _curve_share(
    land: Landscape, rows: Sequence[Any], shape: frontier.Shape | None, draw: Any
) -> float | None:
    """The best share at B of one bootstrap fit drawn at random; None while no curve fits."""
    import numpy as np

    task = str(land.setting["task"])
    try:
        model = frontier.fit(rows, task, int(land.setting["n_seed_labels"]), n_boot=60, shape=shape)
    except frontier.NotEnoughTrials:
        return None
    labelled, unlabelled, _ = model.costs.buys(land.budget, model.seed_labels)
    fit = model.boots[int(draw.integers(len(model.boots)))]
    return float(frontier.FRACTIONS[int(np.argmax(model.predict(labelled, unlabelled, fit)))])


# --- ours ----------------------------------------------------------------------------------


def runner(land: Landscape, reuse: bool) -> Runner:
    """Pilots on the landscape. On a replay table a teacher is paid once per label count
    with `reuse` (the stage cache), otherwise in every pilot; real pilots use the cache
    and their own ledger."""
    trained: set[int] = set()
    done: list[int] = []

    def run(pilots: Sequence[Pilot], allowance_usd: float, cap_usd: float) -> Ran:
        rows = []
        ledger = SpendLedger(cap_usd)  # as `sweep plan`'s sweeps stop at the cap
        for p in pilots:
            if not ledger.may_start():
                break
            reused = p.n_labels in trained
            # The allowance caps what the sweep spends; a reused teacher costs it nothing.
            teacher = land.teacher_usd(p.n_labels) if reused else 0.0
            result = land.pilot(p, allowance_usd + (teacher if reuse else 0.0))
            spent = land.spent(result) - (teacher if reuse and result.n_unlabelled else 0.0)
            if result.n_unlabelled:
                trained.add(p.n_labels)
            done.append(1)
            rows.append(row_from_result(result, f"pilot-{len(done)}", spent))
            ledger.record(plan_spent_usd(rows[-1]))
            if isinstance(land, Real):
                print(f"  pilot L={p.n_labels} U={p.n_unlabelled}: score {result.score:.4f}, "
                      f"spent ${spent:.3f}", flush=True)  # fmt: skip
        return Ran(tuple(rows))  # a pilot that raises stops the benchmark

    return run


def table_shape(path: str, setting: dict[str, Any]) -> frontier.Shape:
    """A finished task's curve shape: every point of its table, fitted (its `.json` setting,
    where it has one, names the task)."""
    sidecar = Path(path).with_suffix(".json")
    own = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    prior = {**setting, **{k: v for k, v in own.items() if k in setting}}
    land = Replay(ReplayTable.from_csv(path), prior)
    rows = [
        row_from_result(land.pilot(Pilot(n, u), math.inf), f"point-{n}-{u}", 0.0)
        for n, u in land.table.scores
    ]
    return frontier.fit_shape(rows, str(prior["task"]))


def ours(land: Landscape, args: argparse.Namespace, shape: frontier.Shape | None) -> Plan:
    s = PlanSettings(
        task=land.setting["task"],
        budget_usd=land.budget,
        seed_labels=int(land.setting["n_seed_labels"]),
        usd_per_label=float(land.setting["usd_per_label"]),
        max_spend_usd=args.max_spend_share * land.budget,
        cost=land.table.cost if isinstance(land, Replay) else None,
        pool_cap=max(land.table.unlabelled) if isinstance(land, Replay) else None,
        ceiling=not args.no_ceiling,
        effective_data=not args.no_effective_data,
        refine=not args.no_refine,
        shape=shape,
    )
    return plan(runner(land, reuse=not args.no_reuse), s)


def coverage(model: Any, lands: Sequence[Landscape]) -> tuple[int, int]:
    """How many full-size trials (the paper's shares at each landscape's budget, none of
    them a pilot) fall inside the model's 90 % bootstrap interval, out of how many."""
    import numpy as np

    inside = total = 0
    for land in lands:
        for fraction in PAPER_FRACTIONS:
            result = land.at(fraction)
            at = (np.array([float(result.n_labels_used)]), np.array([float(result.n_unlabelled)]))
            boots = [model.predict(*at, c)[0] for c in model.boots]
            low, high = np.percentile(boots, (5, 95))
            inside += int(low - 1e-9 <= result.score <= high + 1e-9)
            total += 1
    return inside, total


def _pct(value: float | None, cap: int) -> str:
    return f"{100 * value:.1f} %" if value is not None else f"> {cap} trials"


def _setting(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.replay_table)
    sidecar = path.with_suffix(".json")
    setting: dict[str, Any] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    given = {
        "task": args.task, "budget_usd": args.budget, "n_seed_labels": args.seed_labels,
        "usd_per_label": args.usd_per_label,
    }  # fmt: skip
    setting.update({k: v for k, v in given.items() if v is not None})
    missing = [k for k in ("task", "budget_usd", "n_seed_labels") if k not in setting]
    if missing:
        raise SystemExit(f"decision_cost: {path} has no .json setting; pass --{missing[0]}.")
    if "usd_per_label" not in setting:
        from objectives.tasks import get_task

        setting["usd_per_label"] = get_task(setting["task"]).usd_per_label
    setting.pop("source", None)
    return setting


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay-table", default=str(DEFAULT_TABLE))
    parser.add_argument("--task")
    parser.add_argument("--budget", type=float)
    parser.add_argument("--seed-labels", type=int)
    parser.add_argument("--usd-per-label", type=float)
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the TPE searches")
    parser.add_argument("--max-trials", type=int, default=30)
    parser.add_argument("--no-reuse", action="store_true")
    parser.add_argument("--no-refine", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--no-effective-data", action="store_true")
    parser.add_argument("--warm-start-table", help="another task's table: the curve's shape")
    parser.add_argument(
        "--max-spend-share", type=float, default=0.10, help="ours' cap, a share of B (0.10)"
    )
    parser.add_argument("--real", action="store_true", help="the demo's real objective")
    parser.add_argument(
        "--work-dir", default="runs/bench/decision_cost", help="--real: cache and reference"
    )
    parser.add_argument("--tiny", action="store_true", help="2 TPE seeds (CI)")
    return parser.parse_args()


def full_size_costs(
    land: Landscape, args: argparse.Namespace, shape: frontier.Shape | None
) -> dict[str, float | None]:
    """Print each full-size search's cost per seed; their means (None: a seed missed)."""
    seeds = range(2 if args.tiny else args.seeds)
    cost: dict[str, float | None] = {"grid": grid_cost(land, args.max_trials)}
    for method in ("plain TPE", "default sweep", "steered"):
        outcomes = [optuna_cost(land, method, seed, args.max_trials, shape) for seed in seeds]
        runs = [r for r, _ in outcomes]
        reached = [r for r in runs if r is not None]
        cost[method] = statistics.fmean(reached) if len(reached) == len(runs) else None
        if method == "steered":
            print("default sweep steered by the curve: " + ", ".join(
                f"{_pct(r, args.max_trials)} ({n} steered)" for r, n in outcomes))  # fmt: skip
        else:
            print(f"{method}: " + ", ".join(_pct(r, args.max_trials) for r in runs))
    return cost


def report_ours(land: Landscape, result: Plan) -> bool:
    """Print ours' rounds, stop and coverage; whether it lands within a point of the best."""
    for n, r in enumerate(result.rounds, start=1):
        rec = r.recommendation
        true = land.at(rec.compute_fraction).score if rec else None
        print(
            f"ours, round {n}: {len(r.pilots)} pilots "
            + ", ".join(f"(L={p.n_labels}, U={p.n_unlabelled})" for p in r.pilots)
            + f"; spent {100 * r.spent_usd / land.budget:.1f} %; "
            + (
                f"recommends f={rec.compute_fraction:.3f} [{rec.fraction_interval[0]:.2f}, "
                f"{rec.fraction_interval[1]:.2f}], predicted {rec.score:.4f}, "
                f"true {true:.4f} ({true - land.best:+.4f} from the best)"
                if rec and true is not None
                else f"no fit yet ({r.why_no_fit.split(';')[0]})"
            )
        )
    final = result.recommendation
    true = land.at(final.compute_fraction).score if final else None
    within = true is not None and true >= land.best - WITHIN
    print(f"ours stopped: {result.stopped_because}; within a point of the best: {within}")
    if result.model is not None:
        held_out = [land]
        if isinstance(land, Replay):  # other budgets on the same table cost nothing to score
            held_out += [
                Replay(land.table, {**land.setting, "budget_usd": land.budget * k})
                for k in (0.5, 2.0)
            ]
        inside, total = coverage(result.model, held_out)
        budgets = ", ".join(f"${x.budget:g}" for x in held_out)
        print(
            f"90 % interval coverage on {total} held-out full-size trials (budgets {budgets}): "
            f"{100 * inside / total:.0f} %"
        )
    return within


def main() -> None:
    import optuna

    args = _arguments()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    land: Landscape
    if args.real:
        work = Path(args.work_dir)
        land = Real(work, work / "reference.json")
        name = "real bbc_news (the demo's setting)"
    else:
        land = Replay(ReplayTable.from_csv(args.replay_table), _setting(args))
        name = Path(args.replay_table).name
    print(
        f"{name}, B=${land.budget:g}, "
        f"{land.setting['n_seed_labels']} seed labels: best {land.best:.4f} at "
        f"f={land.best_fraction:.3f}, annotate only {land.annotate_only:.4f}"
    )
    shape = table_shape(args.warm_start_table, land.setting) if args.warm_start_table else None
    if shape is not None:
        print(f"warm start: {shape.task}'s {shape.n_trials} points, alpha {shape.alpha:.3g}, "
              f"w {shape.w:.3g}")  # fmt: skip
    cost = full_size_costs(land, args, shape)
    result = ours(land, args, shape)
    within = report_ours(land, result)
    share = result.spent_usd / land.budget
    ours_text = f"{100 * share:.1f} %" + ("" if within else " (missed: not within a point)")
    print(
        f"decision cost: ours {ours_text} of the budget (grid {_pct(cost['grid'], args.max_trials)}"
        f", plain TPE {_pct(cost['plain TPE'], args.max_trials)}, default sweep "
        f"{_pct(cost['default sweep'], args.max_trials)})"
    )


if __name__ == "__main__":
    main()
