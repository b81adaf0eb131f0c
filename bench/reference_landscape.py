"""Benchmark 11: full-size reference landscapes measured here, with real training, and the
answers judged against them.

For each task whose teacher learns offline with `cpu-small` (BBC News, FEVER, MultiPIT_Id),
at one budget B under the paper's meter, every share f = 0, 0.1, ..., 1 is trained for real
with 3 seeds (`run_trial` in this process, every dev and test row scored, each trial kept by
run id; a stored trial is reused only when its trial values are the same). The seed-mean
*test* curve is the reference; against it are judged:
- the prior's free answer, leave-one-out (the task's own reference never in its prior);
- a real `sweep run` of 3 trials with the default search, answered by `sweep best`;
- the same with the old default search (f = 0, 1, 0.5, then TPE: `--sampler tpe`);
- the reference's own noise at its best share (the standard error of the seed mean).
The run writes `bench/results/reference_landscape-<date>.json`; its last line is the summary.

    DOA_DATA_DIR=path/to/full/splits python bench/reference_landscape.py --root runs/bench/reference

Why these budgets (`CELLS`): a share spends B only when the teacher is affordable at
f = 0.1 and the pool (the training split less the labels) absorbs the compute money at
f = 1 (the paper table's rule: at most one label's price plus 1 % of B unspent). On training
splits of 1,625-5,000 rows that holds only with few seed labels and no fixed teacher cost
(a = $0: the paper gives no a; its budgets are 100 x ours, where a few dollars matter little):
BBC News 20 seed labels at $4, FEVER 50 at $4, MultiPIT_Id 40 at $6.5. Stanceosaurus is left
out: its teacher does not beat dev's majority class at its recipe (`sweep tasks`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.decision_landscapes import leave_out
from bench.paper_table import TINY_TRIAL, Setting, run_arm_trial, why_not_spent
from bench.results_file import current_commit, write_result_file
from bench.search_efficiency import DEFAULT, other_search, paired, posterior_search
from sweep.decide import posterior, prior
from sweep.decide.costs import Costs

SHARES = tuple(round(i / 10, 1) for i in range(11))
SEEDS = 3
CELLS = (
    Setting("bbc_news", 20, 4.0, 0.0),
    Setting("fever", 50, 4.0, 0.0),
    Setting("multipit_id", 40, 6.5, 0.0),
)
TINY_CELLS = (Setting("fever", 20, 2.0, 0.0),)
TINY_SHARES = (0.0, 0.5, 1.0)


def measure(
    root: Path, cells: tuple[Setting, ...], seeds: int, shares: tuple[float, ...], tiny: bool
) -> None:
    """Every (cell, share, seed) trial, seed by seed so that a partial run is already a
    whole landscape at its first seeds."""
    from objectives.data import load_task_data

    for cell in cells:
        rows = len(load_task_data(_spec(cell, tiny), None).train)
        for share in shares[1:]:
            if why := why_not_spent(cell, share, rows):
                print(f"{cell.name}: {why}", flush=True)
    for seed in range(seeds):
        for cell in cells:
            for share in shares:
                trial = run_arm_trial(root / cell.name, cell, share, seed, tiny)
                print(
                    f"{cell.name} f={share:g} seed={seed}: dev {trial['score']:.3f} "
                    f"test {trial['test_score']:.3f} unspent ${trial['unspent_usd']:.3f} "
                    f"L={trial['n_labels_used']} U={trial['n_unlabelled']}",
                    flush=True,
                )


# --- the reference and the answers judged against it --------------------------------------


@dataclass(frozen=True)
class Reference:
    """One cell's measured trials and its seed-mean test curve over SHARES."""

    cell: Setting
    trials: tuple[dict[str, Any], ...]
    shares: tuple[float, ...] = SHARES

    def curve(self, split: str = "test_score") -> np.ndarray:
        return np.array([np.mean([t[split] for t in self.at(f)]) for f in self.shares])

    def at(self, share: float) -> list[dict[str, Any]]:
        return [t for t in self.trials if math.isclose(t["compute_fraction"], share)]

    @property
    def best_share(self) -> float:
        return self.shares[int(np.argmax(self.curve()))]

    def regret(self, share: float) -> float:
        """Points lost by answering `share` (the curve read linearly between its shares)."""
        curve = self.curve()
        return float(100 * (curve.max() - np.interp(share, self.shares, curve)))

    @property
    def noise(self) -> float:
        """The standard error of the seed mean at the best share, in points."""
        scores = [t["test_score"] for t in self.at(self.best_share)]
        return float(100 * np.std(scores, ddof=1) / math.sqrt(len(scores)))


def load(root: Path, cell: Setting, seeds: int, shares: tuple[float, ...], tiny: bool) -> Reference:
    trials = [
        run_arm_trial(root / cell.name, cell, f, s, tiny) for s in range(seeds) for f in shares
    ]
    return Reference(cell, tuple(trials), shares)


def trial_fields(cell: Setting) -> dict[str, Any]:
    """What the sweeps' trials share with the reference's: the paper meter at the cell's a,
    the whole pool, every dev and test row."""
    return {"meter": "paper", "a_usd": cell.a_usd, "max_unlabelled": None,
            "max_eval_examples": None, "n_reports": 0}  # fmt: skip


def cell_costs(cell: Setting, tiny: bool) -> Costs:
    """What each share buys in the cell: its task's prices, bound by its training split."""
    from objectives.data import load_task_data

    spec = _spec(cell, tiny)
    rows = len(load_task_data(spec, None).train)
    assert spec.cost_model is not None
    return Costs.from_model(spec.cost_model, spec.usd_per_label, None, rows)


def prior_answer(cell: Setting, tiny: bool) -> float:
    """The posterior's answer before any trial (the prior's), at the cell's own prices and data."""
    buys = cell_costs(cell, tiny).buys(cell.budget_usd, cell.seed_labels)
    return posterior.answer(
        posterior.update(prior.hypotheses(prior.shipped())), buys
    ).compute_fraction


def replayed(ref: Reference, tiny: bool, k: int = 3) -> dict[str, list[float]]:
    """The regret, per seed, of each search's answer after k trials replayed on that seed's
    own measured dev scores (read linearly between the shares): real noise, paired by seed,
    at no training cost. The posterior's search is told each trial's logged noise."""
    costs = cell_costs(ref.cell, tiny)
    hyps = prior.hypotheses(prior.shipped())
    noise = float(
        np.mean([posterior.noise_sd(t["score_low"], t["score_high"]) for t in ref.trials])
    )
    out: dict[str, list[float]] = {"ours": [], "old": []}
    for seed in sorted({t["seed"] for t in ref.trials}):
        dev = [next(t["score"] for t in ref.at(f) if t["seed"] == seed) for f in ref.shares]

        def score(share: float, dev: list[float] = dev) -> float:
            return float(np.interp(share, ref.shares, dev))

        ours = posterior_search(
            hyps, costs, ref.cell.budget_usd, ref.cell.seed_labels, score, k, noise, seed
        )
        out["ours"].append(ref.regret(ours[-1]))
        out["old"].append(ref.regret(other_search(DEFAULT, score, k, seed)[-1]))
    return out


def sweep_answer(root: Path, cell: Setting, sampler: str, tiny: bool) -> float:
    """A real 3-trial `sweep run` (Ray Tune, Optuna, MLflow) answered as `sweep best` does:
    the posterior's share for the posterior's search, the best trial's for the others."""
    from sweep.config import SweepConfig
    from sweep.decide.evidence import answer_at
    from sweep.engine.tuner import run_sweep
    from sweep.tracking.mlflow_store import Tracker
    from sweep.tracking.optuna_store import study_exists
    from sweep.tracking.results import best_allocations

    cfg = SweepConfig(
        name=f"{cell.name}-{sampler}",
        task=cell.task,
        budget_usd=cell.budget_usd,
        n_seed_labels=cell.seed_labels,
        n_trials=3,
        preset="cpu-small",
        sampler=sampler,
        trial={**trial_fields(cell), **(TINY_TRIAL if tiny else {})},
        concurrency=1,
        cpus_per_trial=2.0,
        root=str(root / f"sweeps-{sampler}"),  # its own store: no answer from the other's trials
    )
    run_sweep(cfg, resume=study_exists(cfg.name, cfg.optuna_storage))
    tracker = Tracker(cfg.tracking)
    (best,) = best_allocations(tracker, cell.task, cell.budget_usd, [cfg.name])
    if sampler != "posterior":
        return best.compute_fraction
    answer = answer_at(tracker, best)
    return best.compute_fraction if answer is None else answer.compute_fraction


def _spec(cell: Setting, tiny: bool) -> Any:
    from objectives.trial_config import trial_config

    values = {
        "task": cell.task,
        "budget_usd": cell.budget_usd,
        "meter": "paper",
        "n_seed_labels": cell.seed_labels,
        "compute_fraction": 0.0,
        "a_usd": cell.a_usd,
    }
    return trial_config(values, preset="cpu-small").task_spec()


def judge(root: Path, refs: Sequence[Reference], tiny: bool) -> list[dict[str, Any]]:
    out = []
    for ref in refs:
        task = ref.cell.task
        with leave_out(task):
            free = prior_answer(ref.cell, tiny)
            replay = replayed(ref, tiny)
            ours = sweep_answer(root, ref.cell, "posterior", tiny)
        old = sweep_answer(root, ref.cell, "tpe", tiny)
        others = [reference_grid(r) for r in refs if r is not ref]
        with leave_out(task, extra=others):
            with_refs = prior_answer(ref.cell, tiny)
        answers = {"ours": ours, "prior": free, "old": old, "prior_with_references": with_refs}
        out.append({
            "task": task, "budget_usd": ref.cell.budget_usd, "seed_labels": ref.cell.seed_labels,
            "a_usd": ref.cell.a_usd, "best_share": ref.best_share,
            "test_curve": ref.curve().tolist(), "dev_curve": ref.curve("score").tolist(),
            "noise_points": ref.noise,
            "answers": answers,
            "regret_points": {k: ref.regret(f) for k, f in answers.items()},
            "replayed_regret_points": replay,
            # paired() reads score units: the regrets are in points
            "replayed_ours_minus_old": paired(
                np.array(replay["ours"]) / 100, np.array(replay["old"]) / 100
            ),
            "trials": [_kept(t) for t in ref.trials],
        })  # fmt: skip
    return out


def _kept(trial: dict[str, Any]) -> dict[str, Any]:
    keys = ("run_id", "compute_fraction", "seed", "score", "test_score", "unspent_usd",
            "n_labels_used", "n_unlabelled", "teacher_score", "degenerate")  # fmt: skip
    return {k: trial.get(k) for k in keys}


def reference_grid(ref: Reference) -> prior.Known:
    """A task's reference as a landscape (a grid of L x U): the shares' pools at the lowest
    and highest label counts the path saw, each scored by its share's seed-mean dev score
    (the path moves little in L: it says how scores grow with the pool, not with labels)."""
    from objectives.standins import ReplayTable

    curve = ref.curve("score")
    pools = [int(np.mean([t["n_unlabelled"] for t in ref.at(f)])) for f in ref.shares]
    labels = sorted(
        {min(t["n_labels_used"] for t in ref.trials), max(t["n_labels_used"] for t in ref.trials)}
    )
    scores: dict[tuple[int, int], float] = {}
    for u, s in sorted(zip(pools, curve, strict=True)):
        for n in labels:
            scores.setdefault((n, u), float(s))
    spec = _spec(ref.cell, False)
    table = ReplayTable(
        tuple(labels), tuple(sorted({u for _, u in scores})), scores, spec.cost_model
    )
    return prior.Known(f"reference-{ref.cell.task}", table)


TITLES = {"bbc_news": "BBC News", "fever": "FEVER", "multipit_id": "MultiPIT_Id"}


def table_lines(judged: Sequence[dict[str, Any]]) -> list[str]:
    """The README's table: each answer as `f=share: regret in points`."""
    lines = [
        "| task | B | seed labels | best share (test, seed mean) | ours after 3 trials (real "
        "sweep) | old default search (real sweep) | ours, replayed per seed | old, replayed per "
        "seed | prior alone | prior with the other references | noise (SE, points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in judged:
        a, r, rep = j["answers"], j["regret_points"], j["replayed_regret_points"]
        real = [f"f={a[k]:.2f}: {r[k]:.2f}" for k in ("ours", "old")]
        free = [f"f={a[k]:.2f}: {r[k]:.2f}" for k in ("prior", "prior_with_references")]
        lines.append(
            f"| {TITLES.get(j['task'], j['task'])} | ${j['budget_usd']:g} | {j['seed_labels']} "
            f"| {j['best_share']:.1f} | " + " | ".join(real) + " | "
            + " | ".join(f"{np.mean(rep[k]):.2f}" for k in ("ours", "old")) + " | "
            + " | ".join(free) + f" | {j['noise_points']:.2f} |"
        )  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="keep every trial here (default: a temporary folder)")
    parser.add_argument("--measure-only", action="store_true", help="only run the trials")
    parser.add_argument("--tiny", action="store_true", help="one small cell, 2 seeds (CI)")
    parser.add_argument("--results", help="folder of the result file (default bench/results)")
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds per share ({SEEDS})")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.tiny:
        os.environ.setdefault(
            "DOA_DATA_DIR", str(Path(__file__).resolve().parents[1] / "tests" / "data")
        )
    cells, seeds, shares = (
        (TINY_CELLS, 2, TINY_SHARES) if args.tiny else (CELLS, args.seeds, SHARES)
    )
    commit = current_commit()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        measure(root, cells, seeds, shares, args.tiny)
        if args.measure_only:
            print(f"measured on {commit}")
            return
        refs = [load(root, c, seeds, shares, args.tiny) for c in cells]
        judged = judge(root, refs, args.tiny)
    lines = table_lines(judged)
    print("\n".join(lines))

    def mean(key: str) -> float:
        return float(np.mean([j["regret_points"][key] for j in judged]))

    noise = float(np.mean([j["noise_points"] for j in judged]))
    rep = {
        k: np.concatenate([j["replayed_regret_points"][k] for j in judged]) for k in ("ours", "old")
    }
    diff = paired(rep["ours"] / 100, rep["old"] / 100)
    replay_line = (
        f"replayed on each seed's measured scores ({rep['ours'].size} task-seeds): ours after 3 "
        f"trials {rep['ours'].mean():.2f}, old default search {rep['old'].mean():.2f} points; "
        f"ours - old {diff[0]:+.2f} [{diff[1]:+.2f}, {diff[2]:+.2f}] (90 %, paired by seed)"
    )
    print(replay_line)
    last = (
        f"reference: over {len(judged)} tasks, ours after 3 trials regret {mean('ours'):.2f} "
        f"points (prior alone {mean('prior'):.2f}; old default search {mean('old'):.2f}; the "
        f"reference's noise {noise:.2f} points)"
    )
    path = write_result_file(
        "reference_landscape" + ("-tiny" if args.tiny else ""),
        {"cells": [dataclasses.asdict(c) for c in cells], "seeds": seeds, "shares": shares,
         "preset": "cpu-small", "tiny": args.tiny},
        {"cells": judged, "table": lines, "replayed": replay_line, "summary": last},
        folder=Path(args.results) if args.results else None, commit=commit,
    )  # fmt: skip
    print(f"result file: {path}")
    print(last)


if __name__ == "__main__":
    main()
