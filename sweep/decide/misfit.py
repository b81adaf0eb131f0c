"""The posterior's discrepancy term, fitted leave-one-grid-out on the shipped landscapes.

Each shipped grid in turn is a new task, at the settings its sidecar names (budget, seed
labels; its own prices), and the other grids are its hypotheses. The answer is given twice:
before any trial, and after two (its own share and annotate only, each read off the grid
with a point of noise, as a sweep starts). The misfit (its SD, its correlation lengths in
log L and log(1 + U), its growth beyond a grid's range, and how far a task's label and pool
scales stray from a landscape's) is, among those whose answers are calibrated there (the
regret they print within 1.25 x of the regret they realize; their 90 % share range holding
the grid's best share in 85 % of the answers, at a mean width of at most 0.5), the one whose
answers lose least (`Calibration.loss`).

Why calibration, not likelihood: the misfit that best predicts held-out scores along the
share path (`held_out_density`, still reported) is 9 points of SD. It explains how far the
grids' levels differ, but it printed an expected regret of 3.9 points where 0.24 was
realized: a stationary misfit cannot say that grids differ in level far more than in where
their best share lies. What a user reads is the regret and the range, so those are fitted.

    python -m sweep.decide.misfit      # refit; the constant lives in sweep.decide.posterior
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import logsumexp

from sweep.decide import posterior, prior
from sweep.decide.costs import Buys, Costs
from sweep.decide.posterior import Misfit, Observation, update

READ_OFF_SD = 0.005  # a grid score read off the paper's plot
OBSERVED = (1, 2, 3)  # shares observed per draw
DRAWS_PER_SIZE = 4
EVERY = 5  # the held-out shares: every fifth of FRACTIONS (0, 0.05, ..., 1)


def _settings(known: prior.Known) -> list[Buys]:
    """What every share buys at each setting the grid's sidecar names, at its own prices."""
    sidecar = prior.LANDSCAPES / f"{known.name}.json"
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    if "usd_per_label" not in meta:
        return []
    costs = Costs.from_model(known.table.cost, meta["usd_per_label"], max(known.table.unlabelled))
    return [costs.buys(float(b), int(n)) for b, n in meta.get("settings", [])]


def held_out_density(misfit: Misfit, known: Sequence[prior.Known] | None = None) -> float:
    """The summed log predictive density of every grid's held-out shares (higher is better)."""
    grids = tuple(known if known is not None else prior.shipped())
    rng = np.random.default_rng(0)
    total = 0.0
    for grid in grids:
        others = prior.hypotheses([k for k in grids if k is not grid])
        for buys in _settings(grid):
            labelled, unlabelled = buys.labelled[::EVERY], buys.unlabelled[::EVERY]
            truth = grid.scores(labelled, unlabelled)
            for size, _ in itertools.product(OBSERVED, range(DRAWS_PER_SIZE)):
                seen = rng.choice(truth.size, size=size, replace=False)
                rest = np.setdiff1d(np.arange(truth.size), seen)
                obs = [Observation(labelled[i], unlabelled[i], truth[i], READ_OFF_SD) for i in seen]
                post = update(others, obs, misfit).deciding(buys)
                mean, cov, _ = post.predict(labelled[rest], unlabelled[rest])
                cov = cov + READ_OFF_SD**2 * np.eye(rest.size)[None]
                chol = np.linalg.cholesky(cov)
                white = np.linalg.solve(chol, (truth[rest][None] - mean)[..., None])[..., 0]
                log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
                log_p = -0.5 * ((white**2).sum(axis=1) + log_det + rest.size * np.log(2 * np.pi))
                total += float(logsumexp(log_p, b=post.weights))
    return total


@dataclass(frozen=True)
class Calibration:
    """What the answers printed against what happened, over the leave-one-grid-out cases."""

    printed: float  # mean expected regret printed, points
    realized: float  # mean regret realized, points
    held: int  # cases whose 90 % share range held the best share
    n: int
    width: float  # mean width of the share range

    @property
    def ratio(self) -> float:
        return max(self.printed, 1e-3) / max(self.realized, 1e-3)

    @property
    def calibrated(self) -> bool:
        """Printed regret within RATIO of the realized; the range holds the best share in 85 %
        of the cases, at a mean width of at most 0.5."""
        return 1 / RATIO <= self.ratio <= RATIO and self.held >= 0.85 * self.n and self.width <= 0.5

    @property
    def loss(self) -> tuple[float, float]:
        """What the fit minimises: among calibrated misfits the realized regret (the answers'
        quality), else how far from calibrated."""
        off = (
            abs(math.log(self.ratio))
            + max(0.0, 0.85 - self.held / self.n)
            + max(0.0, self.width - 0.5)
        )
        return (self.realized, off) if self.calibrated else (math.inf, off)


def calibration(misfit: Misfit, known: Sequence[prior.Known] | None = None) -> Calibration:
    """Each grid's answers at its settings, from the other grids: before any trial, and after
    two (the answer's share and annotate only, as a sweep starts), against the grid's own
    best share (its scores read at every share, as the benchmarks' replay reads them)."""
    grids = tuple(known if known is not None else prior.shipped())
    found = []
    for grid in grids:
        others = prior.hypotheses([k for k in grids if k is not grid])
        for buys in _settings(grid):
            truth = grid.scores(buys.labelled, buys.unlabelled)
            ok = posterior.eligible(buys).astype(int)
            best = float(buys.fractions[ok][np.argmax(truth[ok])])
            first = posterior.answer(update(others, (), misfit), buys, CALIBRATION_DRAWS)
            seen = [round(first.compute_fraction * 100), 0]
            obs = [Observation(buys.labelled[i], buys.unlabelled[i], truth[i], 0.01) for i in seen]
            second = posterior.answer(update(others, obs, misfit), buys, CALIBRATION_DRAWS)
            for a in (first, second):
                index = round(a.compute_fraction * 100)
                low, high = a.fraction_interval
                found.append((a.expected_regret, truth[ok].max() - truth[index],
                              low - 0.005 <= best <= high + 0.005, high - low))  # fmt: skip
    table = np.array(found, dtype=float)
    return Calibration(
        float(100 * table[:, 0].mean()), float(100 * table[:, 1].mean()),
        int(table[:, 2].sum()), len(found), float(table[:, 3].mean()),
    )  # fmt: skip


GRID = {
    "sd": (0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.045),
    "length_labels": (0.5, 1.0, 2.0, 4.0, 8.0),
    "length_pool": (0.5, 1.0, 2.0, 4.0, 8.0),
    "beyond_sd": (0.0, 0.01, 0.03, 0.1, 0.3),
    "scale_sd": (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, math.inf),
}
START = Misfit(sd=0.005, length_labels=2.0, length_pool=2.0, beyond_sd=0.0, scale_sd=math.inf)
RATIO = 1.25  # tighter than the 1.5 a user is promised: a grid judged elsewhere may differ
CALIBRATION_DRAWS = 1000


def fit(known: Sequence[prior.Known] | None = None) -> tuple[Misfit, Calibration]:
    """The misfit whose answers are calibrated leave-one-grid-out (the least
    `Calibration.loss`): coordinate descent over GRID from START, each value in turn moved
    to its neighbours on the grid while that helps."""
    best, found = START, calibration(START, known)
    improved = True
    while improved:
        improved = False
        for name, values in GRID.items():
            at = values.index(getattr(best, name))
            for step in (-1, 1):
                if 0 <= at + step < len(values):
                    candidate = replace(best, **{name: values[at + step]})
                    value = calibration(candidate, known)
                    if value.loss < found.loss:
                        best, found, improved = candidate, value, True
    return best, found


if __name__ == "__main__":
    misfit, found = fit()
    print(f"{misfit}: {found} (held-out log density {held_out_density(misfit):.1f})")
