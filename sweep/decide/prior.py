"""What measured landscapes say about a new task's split before any trial of it has run.

A landscape is a grid of measured scores over labelled L and distilled U examples (the
paper's FEVER, WLP and NQ grids, the project's BBC News grid: `landscapes/`, sources in its
README). A new task differs from them in what is known in advance (its price per label, its
compute prices, its seed labels, its training rows, B), and those are applied exactly
(`sweep.decide.costs`): every share f of B becomes the task's own (L, U). What is not known,
how its scores grow with L and U, is carried over as hypotheses: each known landscape read
with L and U rescaled (the task may need 4 x the labels, or 1/10 of the pool, to get as far).
A hypothesis is read only where its grid was measured: a point beyond the grid's range is
read at the nearest edge, and how far beyond (in log units) is returned beside the reading,
so that the posterior (`sweep.decide.posterior`) trusts it less there and the answer can
say so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from objectives.standins import ReplayTable

Array = NDArray[np.float64]
LANDSCAPES = Path(__file__).with_name("landscapes")
LABEL_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # the task needs 1/k x the labels to get as far
POOL_SCALES = (0.1, 0.3, 1.0, 3.0)  # ... and 1/k x the distilled examples
SAME_SCORES = 0.01  # a grid within this of another on every common point is a copy of it


@dataclass(frozen=True)
class Known:
    """One measured landscape: a name and its grid of scores."""

    name: str
    table: ReplayTable

    @functools.cached_property
    def _grid(self) -> tuple[Array, Array, Array]:
        """The grid's axes (log L, log(1 + U)) and its scores as a matrix."""
        table = self.table
        scores = np.array(
            [[table.scores[(n, u)] for u in table.unlabelled] for n in table.labelled]
        )
        log_l = np.log(np.array(table.labelled, dtype=float))
        log_u = np.log1p(np.array(table.unlabelled, dtype=float))
        # An axis of one point becomes a cell of width one with equal ends.
        if log_l.size == 1:
            log_l, scores = np.append(log_l, log_l[0] + 1), np.vstack([scores, scores])
        if log_u.size == 1:
            log_u, scores = np.append(log_u, log_u[0] + 1), np.hstack([scores, scores])
        return log_l, log_u, scores

    def scores(self, n_labelled: Array, n_unlabelled: Array) -> Array:
        """The grid's score at each point, read as a replay of it reads one (bilinear in
        log L and log(1 + U), clamped at the grid's edges), for many points at once."""
        log_l, log_u, grid = self._grid
        i, ti = _bracket(log_l, np.log(np.maximum(n_labelled, 1.0)))
        j, tj = _bracket(log_u, np.log1p(np.maximum(n_unlabelled, 0.0)))
        return np.asarray(
            (1 - ti) * (1 - tj) * grid[i, j]
            + ti * (1 - tj) * grid[i + 1, j]
            + (1 - ti) * tj * grid[i, j + 1]
            + ti * tj * grid[i + 1, j + 1],
            dtype=float,
        )

    def beyond(self, n_labelled: Array, n_unlabelled: Array) -> Array:
        """How far each point lies outside the grid's measured range, in log units (L) and
        log(1 + U) units (U), added; 0 inside."""
        labels, pools = self.table.labelled, self.table.unlabelled
        log_l = np.log(np.maximum(n_labelled, 1.0))
        log_u = np.log1p(np.maximum(n_unlabelled, 0.0))
        out_l = np.maximum(math.log(labels[0]) - log_l, 0) + np.maximum(
            log_l - math.log(labels[-1]), 0
        )
        out_u = np.maximum(math.log1p(pools[0]) - log_u, 0) + np.maximum(
            log_u - math.log1p(pools[-1]), 0
        )
        return np.asarray(out_l + out_u, dtype=float)


def _bracket(axis: Array, values: Array) -> tuple[NDArray[np.intp], Array]:
    """(index of the cell, position in it) of each value on an axis, clamped at its ends."""
    i = np.clip(np.searchsorted(axis, values, side="right") - 1, 0, axis.size - 2)
    t = np.clip((values - axis[i]) / (axis[i + 1] - axis[i]), 0.0, 1.0)
    return i, t


@functools.cache
def _packaged() -> tuple[Known, ...]:
    """The package's landscapes, read once per process (a plan asks for them at every step)."""
    return tuple(Known(p.stem, ReplayTable.from_csv(p)) for p in sorted(LANDSCAPES.glob("*.csv")))


def same_landscape(a: ReplayTable, b: ReplayTable) -> bool:
    """Whether two grids are one landscape: every score within SAME_SCORES of the other's on
    the points both measured (a copy rounded to 3 decimals, or re-read off the same plot, is
    still the same landscape)."""
    common = set(a.scores) & set(b.scores)
    return bool(common) and all(abs(a.scores[p] - b.scores[p]) <= SAME_SCORES for p in common)


def shipped(exclude: ReplayTable | None = None, exclude_name: str = "") -> tuple[Known, ...]:
    """The landscapes in the package, less any that is `exclude`'s landscape (by content:
    `same_landscape`) or is named `exclude_name`: a landscape never informs its own prior,
    whatever its file is called or however it was rounded."""
    return tuple(
        k
        for k in _packaged()
        if (exclude is None or not same_landscape(k.table, exclude))
        and (not exclude_name or k.name != exclude_name)
    )


@dataclass(frozen=True)
class Hypothesis:
    """A known landscape read at a label scale and a pool scale."""

    known: Known
    label_scale: float
    pool_scale: float

    @property
    def name(self) -> str:
        return f"{self.known.name} L x{self.label_scale:g} U x{self.pool_scale:g}"


def hypotheses(known: Sequence[Known]) -> tuple[Hypothesis, ...]:
    """Every landscape read at every label and pool scale."""
    return tuple(Hypothesis(k, a, b) for k in known for a in LABEL_SCALES for b in POOL_SCALES)


def readings(
    hyps: Sequence[Hypothesis], n_labelled: Array, n_unlabelled: Array
) -> tuple[Array, Array]:
    """[hypothesis, point]: each hypothesis's raw score (before the task's own level and
    scale) and how far beyond its grid's measured range it was read."""
    if n_labelled.size == 0:
        empty = np.zeros((len(hyps), 0))
        return empty, empty.copy()
    raw = [h.known.scores(n_labelled * h.label_scale, n_unlabelled * h.pool_scale) for h in hyps]
    far = [h.known.beyond(n_labelled * h.label_scale, n_unlabelled * h.pool_scale) for h in hyps]
    return np.array(raw, dtype=float), np.array(far, dtype=float)


def measured_pools(hyps: Sequence[Hypothesis]) -> list[int]:
    """The pool sizes (U > 0) some hypothesis's grid measured, read at its pool scale: where
    an observation tests the task rather than a grid's interpolation."""
    return sorted({round(u / h.pool_scale) for h in hyps for u in h.known.table.unlabelled if u})


def log_spaced(low: int, high: int, n: int) -> list[int]:
    """Up to n distinct integers from low to high, evenly spaced in log."""
    if high <= low:
        return [max(low, 0)]
    return sorted({round(float(x)) for x in np.geomspace(max(low, 1), high, n)})
