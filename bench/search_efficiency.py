"""Benchmark 2: how close each search's answer is to the best split after k full-size trials.

Every grid in `--suite FOLDER` (a measured landscape: labels, unlabelled, compute_usd, score)
at B = $100, $300 and $1000 with 100 and 1000 seed labels (or `--seed-labels N`) is a cell;
its truth is the grid replayed at every share of B (`bench/decision_landscapes.py`). Each
search runs K full-size trials on it, each trial's score read with Gaussian noise of SD
`--noise` (1 point by default), over `--seeds` seeds. After k trials:
  ours:           `sweep run`'s default search (the landscape posterior's sampler, its prior
                  built leave-one-out: never from the grid judged, by name or near-content);
                  its answer is the posterior's share, as `sweep best` reports it;
  today's default: the previous default, kept here as a named baseline: annotate only,
                  f = 1 and f = 0.5 first, then TPE (`--sampler tpe`); its answer is its best
                  (noisy) trial, as for every other search;
  plain TPE, random, grid order (the paper's shares 0, 0.1, ..., 1 in order);
  prior alone:    the posterior's answer before any trial (it spends nothing).
The regret is the truth's best score minus the truth's score at the answer, in points. The
cells' difficulty (the share of shares within a point of the best, the regret of a random
share) is printed beside them, and ours against today's default as a 90 % paired interval
over seeds (t). The run writes `bench/results/search_efficiency-<date>.json`.

    python bench/search_efficiency.py --suite ../shared/data/paper_grids [--noise 0.01]
        [--seeds 10] [--max-trials 10] [--seed-labels 100] [--annotate-at K] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_landscapes import Grid, Truth, leave_out, load_grid
from bench.results_file import write_result_file
from search_spaces import get_space
from search_spaces.spaces import PAPER_FRACTIONS
from sweep.decide import posterior, prior
from sweep.decide.costs import Costs

BUDGETS = (100.0, 300.0, 1000.0)
SEED_LABELS = (100, 1000)
DEFAULT = "today's default"
METHODS = ("ours", DEFAULT, "plain TPE", "random", "grid order")
QUOTED = (1, 3, 10)  # the trials the last line quotes
REAL_BUDGETS = (100.0, 300.0)


@dataclass
class Cell:
    grid: Grid
    setting: dict[str, Any]
    truth: Truth
    costs: Costs
    hypotheses: tuple[prior.Hypothesis, ...]

    @property
    def name(self) -> str:
        return (
            f"{self.grid.name} B=${self.setting['budget_usd']:g} N={self.setting['n_seed_labels']}"
        )


def make_cell(grid: Grid, budget: float, seed_labels: int) -> Cell:
    """A grid at one setting, with its prior built leave-one-out (asserted)."""
    known = prior.shipped(exclude=grid.table, exclude_name=grid.name)
    assert not any(prior.same_landscape(k.table, grid.table) for k in known), grid.name
    costs = Costs.from_model(grid.table.cost, grid.usd_per_label, max(grid.table.unlabelled))
    setting = grid.setting(budget, seed_labels)
    return Cell(grid, setting, Truth(grid, setting), costs, prior.hypotheses(known))


def _noisy(cell: Cell, noise: float, rng: np.random.Generator) -> Callable[[float], float]:
    return lambda share: cell.truth.at(share) + float(rng.normal(0.0, noise))


def ours(cell: Cell, k_max: int, noise: float, seed: int, annotate_at: int) -> list[float]:
    """The regret of the posterior's answer after each of k_max trials of its own sampler."""
    budget, seeds = cell.setting["budget_usd"], cell.setting["n_seed_labels"]
    score = _noisy(cell, noise, np.random.default_rng(seed))
    shares = posterior_search(
        cell.hypotheses, cell.costs, budget, seeds, score, k_max, noise, seed, annotate_at
    )
    return [cell.truth.regret(f) for f in shares]


def posterior_search(
    hypotheses: tuple[prior.Hypothesis, ...],
    costs: Costs,
    budget: float,
    seed_labels: int,
    score: Callable[[float], float],
    k_max: int,
    noise: float,
    seed: int,
    annotate_at: int = 1,
) -> list[float]:
    """The posterior's answer after each of k_max trials of `sweep run`'s default sampler,
    asked and told through plain Optuna, each trial scored by `score(share)`."""
    import optuna

    from sweep.engine.sampler import PosteriorSampler, StudyEvidence

    evidence = StudyEvidence(costs, budget, seed_labels, max(noise, posterior.NOISE_FLOOR))
    sampler = PosteriorSampler(
        hypotheses, evidence, budget, seed_labels, k_max, seed=seed,
        defaults={"temperature": 2.0}, annotate_at=annotate_at if annotate_at >= 0 else None,
    )  # fmt: skip
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = get_space("distill_or_annotate")
    buys = costs.buys(budget, seed_labels)
    out = []
    for _ in range(k_max):
        trial = study.ask()
        space(trial)
        study.tell(trial, score(float(trial.params["compute_fraction"])))
        post = posterior.update(hypotheses, evidence(study)[0])
        out.append(posterior.answer(post, buys, seed=seed).compute_fraction)
    return out


def others(cell: Cell, method: str, k_max: int, noise: float, seed: int) -> list[float]:
    """The regret of the best (noisy) trial after each of k_max trials of another search."""
    score = _noisy(cell, noise, np.random.default_rng(seed))
    return [cell.truth.regret(f) for f in other_search(method, score, k_max, seed)]


def other_search(
    method: str, score: Callable[[float], float], k_max: int, seed: int
) -> list[float]:
    """The best (noisy) trial's share after each of k_max trials of another search."""
    import optuna

    if method == "grid order":
        shares = [PAPER_FRACTIONS[i % len(PAPER_FRACTIONS)] for i in range(k_max)]
        values = [score(f) for f in shares]
    else:
        study = optuna.create_study(direction="maximize", sampler=_sampler(method, seed, k_max))
        if method == DEFAULT:
            for point in _first_points(k_max):
                study.enqueue_trial(point)
        space = get_space("distill_or_annotate" if method == DEFAULT else "fraction_only")
        shares, values = [], []
        for _ in range(k_max):
            trial = study.ask()
            space(trial)
            shares.append(float(trial.params["compute_fraction"]))
            values.append(score(shares[-1]))
            study.tell(trial, values[-1])
    return [shares[int(np.argmax(values[: k + 1]))] for k in range(k_max)]


def _sampler(method: str, seed: int, k_max: int) -> Any:
    import optuna

    from sweep.config import SweepConfig
    from sweep.engine.search import make_sampler

    if method == DEFAULT:
        cfg = SweepConfig(name="bench", task="fever", budget_usd=1.0, n_seed_labels=0,
                          n_trials=k_max, sampler="tpe", sampler_seed=seed)  # fmt: skip
        return make_sampler(cfg, 0)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _first_points(k_max: int) -> list[dict[str, Any]]:
    """Today's default's first points: `FIRST_SHARES` (f = 0, 1, 0.5), distilling at T = 2."""
    from search_spaces.spaces import FIRST_SHARES

    points = [{"compute_fraction": f, **({"temperature": 2.0} if f else {})} for f in FIRST_SHARES]
    return points[:k_max]


def regrets(cell: Cell, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """[seed, k] regrets of every method in one cell, and the prior alone (one value)."""
    out = {
        "ours": np.array(
            [
                ours(cell, args.max_trials, args.noise, s, args.annotate_at)
                for s in range(args.seeds)
            ]
        )
    }
    for method in METHODS[1:]:
        out[method] = np.array(
            [others(cell, method, args.max_trials, args.noise, s) for s in range(args.seeds)]
        )
    buys = cell.costs.buys(cell.setting["budget_usd"], cell.setting["n_seed_labels"])
    alone = posterior.answer(posterior.update(cell.hypotheses), buys).compute_fraction
    out["prior alone"] = np.full((args.seeds, args.max_trials), cell.truth.regret(alone))
    return out


def paired(ours_: np.ndarray, other: np.ndarray) -> tuple[float, float, float]:
    """Mean of (ours - other) over seeds with its 90 % t interval (points)."""
    diff = 100 * (ours_ - other)
    mean = float(diff.mean())
    if diff.size < 2 or np.allclose(diff, diff[0]):
        return mean, mean, mean
    half = float(stats.t.ppf(0.95, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size))
    return mean, mean - half, mean + half


def real_sweeps(grids: list[Grid], root: Path) -> list[dict[str, Any]]:
    """3 trials of a real `sweep run --objective replay` (Ray Tune, Optuna, MLflow) on each
    grid at $100 and $300 with 100 seed labels, leave-one-out, answered as `sweep best`
    answers: the posterior's share."""
    from sweep.config import SweepConfig
    from sweep.decide.evidence import answer_at
    from sweep.engine.tuner import run_sweep
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.optuna_store import study_exists
    from sweep.tracking.results import best_allocations

    out = []
    for grid in grids:
        for budget in REAL_BUDGETS:
            cell = make_cell(grid, budget, 100)
            cfg = SweepConfig(
                name=f"{grid.name}-B{budget:g}", task=grid.task, budget_usd=budget,
                n_seed_labels=100, n_trials=3, objective="replay",
                replay_table=str(Path(str(grid.path)).resolve()),
                trial={"usd_per_label": grid.usd_per_label}, root=str(root),
            )  # fmt: skip
            with leave_out(grid.name, grid.table):
                run_sweep(cfg, resume=study_exists(cfg.name, cfg.optuna_storage))
                tracker = Tracker(cfg.tracking)
                (best,) = best_allocations(tracker, grid.task, budget, [cfg.name])
                answer = answer_at(tracker, best)
            share = best.compute_fraction if answer is None else answer.compute_fraction
            found = {
                "grid": grid.name,
                "budget_usd": budget,
                "answer": share,
                "best_trial": best.compute_fraction,
                "regret_points": 100 * cell.truth.regret(share),
                "best_trial_regret_points": 100 * cell.truth.regret(best.compute_fraction),
            }
            out.append(found)
            print(
                f"real sweep {grid.name} B=${budget:g}: sweep best's posterior share {share:.2f}, "
                f"regret {found['regret_points']:.2f} points (its best trial f="
                f"{best.compute_fraction:.2f}: {found['best_trial_regret_points']:.2f})",
                flush=True,
            )
    return out


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(prior.LANDSCAPES), help="a folder of grids")
    parser.add_argument("--noise", type=float, default=0.01, help="SD of each trial's score")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--seed-labels", type=int, help="one seed-label count (100, 1000)")
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--annotate-at", type=int, default=1, help="ours: annotate only's place")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--results", help="folder of the result file (default bench/results)")
    parser.add_argument("--real-sweeps", help="also run real 3-trial sweeps under this root")
    parser.add_argument("--tiny", action="store_true", help="one grid, one cell, 2 seeds (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.seeds, args.max_trials, args.budgets, args.seed_labels = 2, 3, [300.0], 100
    return args


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    args = _arguments()
    grids = [load_grid(p) for p in sorted(Path(args.suite).glob("*.csv"))]
    if args.tiny:
        grids = [g for g in grids if g.name == "fever"][:1] or grids[:1]
    seed_labels = (args.seed_labels,) if args.seed_labels else SEED_LABELS
    per_cell, by_method = [], {m: [] for m in (*METHODS, "prior alone")}
    for grid in grids:
        for n in seed_labels:
            for budget in args.budgets:
                cell = make_cell(grid, budget, n)
                found = regrets(cell, args)
                for m, r in found.items():
                    by_method[m].append(r)
                per_cell.append(_cell_figures(cell, found))
                print(_cell_line(cell, found), flush=True)
    # [cell, seed, k] -> the mean over cells, per seed: [seed, k]
    means = {m: np.mean(np.array(v), axis=0) for m, v in by_method.items()}
    k_max = args.max_trials
    quoted = [k for k in QUOTED if k <= k_max]
    lines = [
        f"mean regret (points) after k = 1..{k_max} trials over {len(per_cell)} cells, "
        f"{args.seeds} seeds, noise SD {args.noise:g}:",
        *(
            f"  {m:<16} " + " ".join(f"{100 * x:5.2f}" for x in means[m].mean(axis=0))
            for m in means
        ),
        *(
            "  ours - today's default after {} trials: {:+.2f} [{:+.2f}, {:+.2f}] points (90 %, "
            "paired over seeds)".format(
                k, *paired(means["ours"][:, k - 1], means[DEFAULT][:, k - 1])
            )
            for k in quoted
        ),
    ]
    table = regret_table(means, k_max)
    sweeps = real_sweeps(grids, Path(args.real_sweeps)) if args.real_sweeps else []
    if sweeps:
        lines.append(
            f"real sweeps (3 trials, --objective replay, 100 seed labels, $100 and $300): "
            f"sweep best's posterior share {np.mean([x['regret_points'] for x in sweeps]):.2f} "
            f"points from the best split on average (their best trial: "
            f"{np.mean([x['best_trial_regret_points'] for x in sweeps]):.2f})"
        )
    print("\n".join([*lines, *table]))

    def at(m: str) -> str:
        return ", ".join(f"{100 * means[m][:, k - 1].mean():.2f}" for k in quoted)

    last = (
        f"search suite: ours regret after {', '.join(map(str, quoted))} trials: {at('ours')} "
        f"points (today's default search: {at(DEFAULT)}; "
        f"plain TPE: {at('plain TPE')}; random: {at('random')}; grid order: {at('grid order')}; "
        f"prior alone: {100 * means['prior alone'].mean():.2f})"
    )
    if not args.no_write:
        path = write_result_file(
            "search_efficiency" + ("-tiny" if args.tiny else ""), vars(args),
            {"cells": per_cell, "real_sweeps": sweeps, "table": table,
             "summary": [*lines, last],
             "mean_by_k": {m: (100 * v.mean(axis=0)).tolist() for m, v in means.items()}},
            folder=Path(args.results) if args.results else None,
        )  # fmt: skip
        print(f"result file: {path}")
    print(last)


NAMES = {"ours": "ours (the posterior's sampler)", DEFAULT: "the previous default (f = 0, 1, "
         "0.5, then TPE)", "plain TPE": "plain TPE", "random": "random", "grid order":
         "the paper's grid, in order", "prior alone": "the prior alone (no trial)"}  # fmt: skip


def regret_table(means: dict[str, np.ndarray], k_max: int) -> list[str]:
    """Mean regret (points) after k trials, one row per search (README.md quotes its rows)."""
    ks = [k for k in (1, 2, 3, 5, 10) if k <= k_max]
    head = "| search | " + " | ".join(f"after {k}" for k in ks) + " |"
    rows = [
        f"| {NAMES[m]} | " + " | ".join(f"{100 * v[:, k - 1].mean():.2f}" for k in ks) + " |"
        for m, v in means.items()
    ]
    return [head, "|---|" + "---|" * len(ks), *rows]


def _cell_figures(cell: Cell, found: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "grid": cell.grid.name, **cell.setting,
        "best_fraction": float(cell.truth.best_fraction),
        "flatness": cell.truth.flatness,
        "random_regret": cell.truth.random_regret,
        "regret_points": {m: (100 * r).tolist() for m, r in found.items()},
    }  # fmt: skip


def _cell_line(cell: Cell, found: dict[str, np.ndarray]) -> str:
    first = {m: 100 * r[:, 0].mean() for m, r in found.items()}
    last = {m: 100 * r[:, -1].mean() for m, r in found.items()}
    return (
        f"{cell.name:<24} best f={cell.truth.best_fraction:.3f} flat "
        f"{100 * cell.truth.flatness:3.0f} % random {100 * cell.truth.random_regret:5.2f} | "
        + " | ".join(f"{m} {first[m]:.2f}->{last[m]:.2f}" for m in found)
    )


if __name__ == "__main__":
    main()
