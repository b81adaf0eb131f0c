"""Benchmark 8: does `sweep plan` answer "what share of B buys compute?" better than a free
guess, and what does deciding cost?

On a measured landscape (a replay table: labels, unlabelled, compute_usd, score) at budget B
with N seed labels, the truth is a dense reference: every share from 0 to 1 in steps of
0.005. A recommendation's **regret** is the best share's score minus the recommended one's,
in points. Printed for every landscape, beside ours (`sweep plan`: the prior from the other
landscapes, then pilots while one is worth its price):
  - the landscape's flatness: the share of the 201 shares within a point of the best;
  - null baselines that spend nothing: every fixed share 0, 0.1, ..., 1 (the best of them,
    chosen on this landscape, which no user could do, and their median); the fixed share a
    user would pick from the other landscapes (leave-one-out: the share with the least mean
    regret on them at the same B and seed labels); the prior alone (`--pilots 0`); a share
    drawn at random (its expected regret);
  - what deciding cost, in the meter that prices B (the paper's dollars): each pilot's
    compute (a teacher that an earlier pilot trained is paid once: the stage cache), and its
    labels beyond the seed labels unless the answer buys at least as many.
The prior never holds the landscape being scored (leave-one-out by name and near-content:
a grid within 0.01 of the target's scores on their common points is dropped, whatever its
file is called: `prior.same_landscape`).

`--noise SD` adds Gaussian noise to every pilot's score (the grids are read off a plot:
about 0.005), over `--seeds` seeds (3 by default with noise), so that a procedure that
trusts one pilot is caught; regrets are then means over seeds with their spread.

    python bench/decision_cost.py --replay-table F --task T --budget B --seed-labels N
    python bench/decision_cost.py --suite FOLDER [--noise 0.005]

`--suite FOLDER`: every grid in FOLDER (named by its task, e.g. `fever.csv`, or with a `.json`
setting beside it) at B in {100, 300, 1000} and seed labels in {100, 1000}; a table, a
result file in `bench/results/`, and the last line `decision suite: ...`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_landscapes import (
    Cell,
    fixed_share_in_sample,
    load_grid,
    mean_sd,
    paired_interval,
    score_cell,
    write_result,
)

BUDGETS = (100.0, 300.0, 1000.0)
SEED_LABELS = (100, 1000)
DEFAULT_TABLE = Path(__file__).resolve().parent / "data" / "fever_synthetic_grid.csv"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay-table", default=str(DEFAULT_TABLE))
    parser.add_argument("--suite", help="a folder of grids: every grid at every setting")
    parser.add_argument("--task")
    parser.add_argument("--budget", type=float)
    parser.add_argument("--seed-labels", type=int)
    parser.add_argument("--usd-per-label", type=float)
    parser.add_argument("--noise", type=float, default=0.0, help="SD of each pilot's score")
    parser.add_argument("--seeds", type=int, help="noise seeds (3 with --noise, else 1)")
    parser.add_argument(
        "--max-spend-share", type=float, default=0.10, help="the plan's cap, a share of B (0.10)"
    )
    parser.add_argument("--no-write", action="store_true", help="write no result file")
    parser.add_argument("--tiny", action="store_true", help="one seed (CI)")
    args = parser.parse_args()
    if args.seeds is None:
        args.seeds = 3 if args.noise > 0 and not args.tiny else 1
    return args


def _line(c: Cell) -> str:
    ours, spent = mean_sd(c.regrets), mean_sd(c.spend_shares)
    return (
        f"{c.name:<10} B=${c.budget:<5g} N={c.seed_labels:<5} best f={c.best_fraction:.3f} "
        f"flat {100 * c.flatness:3.0f} % | ours {ours} pt, spend {spent} %, "
        f"{c.n_pilots:.1f} pilots | prior {100 * c.prior_regret:.2f} | fixed best "
        f"f={c.fixed_best[0]:.1f} {100 * c.fixed_best[1]:.2f}, median {100 * c.fixed_median:.2f}"
        f" | LOO f={c.loo[0]:.1f} {100 * c.loo[1]:.2f} | random {100 * c.random_regret:.2f}"
    )


def single(args: argparse.Namespace) -> None:
    land = load_grid(Path(args.replay_table), args)
    setting = land.setting(args.budget, args.seed_labels)
    cell = score_cell(land, setting, [], args)
    print(_line(cell))
    for n, line in enumerate(cell.transcript.splitlines()):
        print(("  " if n else "  ours, seed 0: ") + line)
    within = max(cell.regrets) <= 0.01
    print(f"ours: regret {100 * sum(cell.regrets) / len(cell.regrets):.2f} points")
    text = f"{100 * sum(cell.spend_shares) / len(cell.spend_shares):.1f} %"
    print(
        f"decision cost: ours {text}{'' if within else ' (missed: not within a point)'} of the "
        f"budget (regret: fixed share f={cell.loo[0]:.1f} chosen on the other landscapes "
        f"{100 * cell.loo[1]:.2f}, prior alone {100 * cell.prior_regret:.2f}, random "
        f"{100 * cell.random_regret:.2f} points)"
    )
    if not args.no_write:
        print(f"result: {write_result(_variant('decision_cost', args), args, [cell], [])}")


def suite(args: argparse.Namespace) -> None:
    folder = Path(args.suite)
    lands = [load_grid(p, args) for p in sorted(folder.glob("*.csv"))]
    if not lands:
        raise SystemExit(f"decision_cost: --suite {folder} holds no .csv grid.")
    cells: list[Cell] = []
    for land in lands:
        for seeds in SEED_LABELS:
            for budget in BUDGETS:
                setting = land.setting(budget, seeds)
                others = [o for o in lands if o is not land]
                cells.append(score_cell(land, setting, others, args))
                print(_line(cells[-1]), flush=True)
    target = [c for c in cells if c.seed_labels == 100]
    lines = [
        _summary(label, group)
        for label, group in (("100 seed labels", target), ("all cells", cells))
    ]
    ours = [statistics.fmean(c.regrets) for c in target]
    spend = [statistics.fmean(c.spend_shares) for c in target]
    best_fixed = fixed_share_in_sample(target)
    lines.append(
        f"decision suite: ours within a point in {sum(max(c.regrets) <= 0.01 for c in target)} "
        f"of {len(target)} cells, mean regret {100 * statistics.fmean(ours):.2f} points, mean "
        f"spend {100 * statistics.fmean(spend):.1f} % of B (best fixed share: "
        f"f={best_fixed[0]:.1f} {100 * best_fixed[1]:.2f} chosen on these cells, "
        f"{100 * statistics.fmean(c.loo[1] for c in target):.2f} chosen leave-one-out; "
        f"prior alone: {100 * statistics.fmean(c.prior_regret for c in target):.2f})"
    )
    lines.insert(-1, calibration(cells))
    print("\n".join(lines[:-1]))
    if not args.no_write:
        print(f"result: {write_result(_variant('decision_suite', args), args, cells, lines)}")
    print(lines[-1])


def calibration(cells: list[Cell]) -> str:
    """What ours printed against what happened, over every cell and seed: its expected regret
    against the realized one, how often its 90 % share range held the best share (at the
    answer's resolution, 0.01) and how wide it was, and whether the answer lay inside it."""
    answers = [
        (c, f, printed, realized, rng)
        for c in cells
        for f, printed, realized, rng in zip(
            c.ours_fractions, c.printed_regrets, c.regrets, c.ranges, strict=True
        )
    ]
    n = len(answers)
    held = sum(
        low - 0.005 <= c.best_fraction <= high + 0.005 for c, _, _, _, (low, high) in answers
    )
    inside = sum(low <= f <= high for _, f, _, _, (low, high) in answers)
    width = statistics.fmean(high - low for *_, (low, high) in answers)
    printed = 100 * statistics.fmean(a[2] for a in answers)
    realized = 100 * statistics.fmean(a[3] for a in answers)
    return (
        f"calibration: printed expected regret {printed:.2f} vs realized {realized:.2f} points; "
        f"the 90 % share range holds the best share in {held} of {n} cells (mean width "
        f"{width:.2f}); the answer inside its range in {inside} of {n}"
    )


def _variant(benchmark: str, args: argparse.Namespace) -> str:
    """The result file's name: the benchmark and what differs from its defaults."""
    parts = [benchmark, f"noise{args.noise:g}" if args.noise else ""]
    return "-".join(p for p in parts if p)


def _summary(label: str, group: list[Cell]) -> str:
    """Within a point, mean regret, and ours against the fixed share chosen leave-one-out
    with a paired interval over the cells (noise seeds averaged within each cell)."""
    ours = [statistics.fmean(c.regrets) for c in group]
    loo = [c.loo[1] for c in group]
    low, high = paired_interval(ours, loo)
    return (
        f"{label}: ours within a point in {sum(max(c.regrets) <= 0.01 for c in group)} of "
        f"{len(group)}, mean regret {100 * statistics.fmean(ours):.2f}; fixed share chosen "
        f"leave-one-out {100 * statistics.fmean(loo):.2f} (ours minus it: 90 % paired interval "
        f"[{100 * low:.2f}, {100 * high:.2f}] points)"
    )


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    args = _arguments()
    suite(args) if args.suite else single(args)


if __name__ == "__main__":
    main()
