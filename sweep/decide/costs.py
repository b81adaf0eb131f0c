"""What a budget buys: the compute prices a task's cost model gives or its trials reveal (a
fixed teacher cost, a cost per labelled and per distilled example, found by non-negative
least squares), and the labels, distilled examples and dollars every compute share of a
budget gives, bound by the data the task has."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from objectives.budget import CostModel
from sweep.tracking.results import TrialRow, device_hour_price, label_price

Array = NDArray[np.float64]
FRACTIONS = np.linspace(0.0, 1.0, 101)  # the compute shares every recommendation weighs
UNSPENT_PER_BUDGET = 0.01  # a share spends B when at most one label's price plus this x B is left


class NotEnoughTrials(Exception):
    """The trials show no prices to read or none learned; the message says what to run."""


@dataclass(frozen=True)
class Buys:
    """What every share of FRACTIONS buys at one budget: labels the student trains on,
    examples distilled, dollars spent."""

    budget_usd: float
    usd_per_label: float
    labelled: Array
    unlabelled: Array
    spent_usd: Array
    fractions: Array = field(default_factory=lambda: FRACTIONS)

    @property
    def spends(self) -> NDArray[np.bool_]:
        """The shares that spend B: at most one label's price plus 1 % of B left unspent (a
        share whose compute money the pool or the teacher cannot absorb is no answer)."""
        tolerance = self.usd_per_label + UNSPENT_PER_BUDGET * self.budget_usd + 1e-9
        return np.asarray(self.budget_usd - self.spent_usd <= tolerance)

    def at(self, index: int) -> tuple[int, int, float]:
        """(labels, unlabelled, dollars spent) of one share."""
        return int(self.labelled[index]), int(self.unlabelled[index]), float(self.spent_usd[index])


@dataclass(frozen=True)
class Costs:
    usd_per_label: float
    usd_per_device_hour: float
    teacher_usd: float  # c0
    usd_per_labelled: float  # c1: teacher fine-tuning per labelled example
    usd_per_unlabelled: float  # c2: soft labels and distillation per unlabelled example
    pool_cap: float | None  # most unlabelled examples a trial could use; None: no cap seen
    train_rows: int | None = None  # the training split: labels and pool come out of it

    @classmethod
    def from_model(
        cls,
        cost: CostModel,
        usd_per_label: float,
        pool_cap: float | None = None,
        train_rows: int | None = None,
    ) -> Costs:
        """A task's compute cost model (dollars = a + b L / 1000 + d U / 1000)."""
        b, d = cost.b_usd_per_1k_labelled / 1000, cost.d_usd_per_1k_unlabelled / 1000
        return cls(usd_per_label, 0.0, cost.a_usd, b, d, pool_cap, train_rows)

    def buys(self, budget_usd: float, seed_labels: int, fractions: Array = FRACTIONS) -> Buys:
        """What every share of `fractions` buys at `budget_usd`: labels (never more than the
        training split holds), unlabelled examples (never more than the pool cap or the rows
        the labels leave), and dollars spent."""
        new = np.floor((1 - fractions) * budget_usd / self.usd_per_label + 1e-9)
        labelled = seed_labels + new
        pool = np.full_like(labelled, np.inf if self.pool_cap is None else self.pool_cap)
        if self.train_rows is not None:
            labelled = np.minimum(labelled, max(self.train_rows, seed_labels))
            new = labelled - seed_labels
            pool = np.minimum(pool, np.maximum(self.train_rows - labelled, 0))
        compute = fractions * budget_usd
        teacher = self.teacher_usd + self.usd_per_labelled * labelled
        affordable = np.floor(np.maximum(compute - teacher, 0.0) / self.usd_per_unlabelled)
        unlabelled = np.minimum(np.where(compute >= teacher, affordable, 0.0), pool)
        spent_compute = np.where(unlabelled > 0, teacher + self.usd_per_unlabelled * unlabelled, 0)
        spent = new * self.usd_per_label + spent_compute
        return Buys(budget_usd, self.usd_per_label, labelled, unlabelled, spent, fractions)

    def fitted_to(self, rows: Sequence[TrialRow]) -> Costs:
        """These prices rescaled to what the distilling trials really spent (one factor: the
        median ratio, robust from the first such trial), with the pool cap a trial hit when
        it left compute money unspent. For a meter known only once trials have run."""
        distilled = [r for r in rows if r.n_unlabelled > 0 and r.compute_spent_usd > 0]
        if not distilled:
            return self
        predicted = [
            self.teacher_usd + self.usd_per_labelled * r.n_labels_used
            + self.usd_per_unlabelled * r.n_unlabelled
            for r in distilled
        ]  # fmt: skip
        k = float(
            np.median([r.compute_spent_usd / p for r, p in zip(distilled, predicted, strict=True)])
        )
        capped = [
            r
            for r in distilled
            if not r.grid and r.compute_usd - r.compute_spent_usd > 0.1 * r.compute_usd
        ]
        cap = max((r.n_unlabelled for r in capped), default=None)
        return replace(
            self,
            teacher_usd=k * self.teacher_usd,
            usd_per_labelled=k * self.usd_per_labelled,
            usd_per_unlabelled=k * self.usd_per_unlabelled,
            pool_cap=self.pool_cap if cap is None else min(cap, self.pool_cap or cap),
        )


def _one_value(prices: Iterable[float | None], what: str) -> float:
    values = [p for p in prices if p is not None]
    if not values:
        raise NotEnoughTrials(f"no trial records its {what}")
    low, high = min(values), max(values)
    if high > low * 1.001:
        raise ValueError(
            f"the trials were priced differently ({what} from {low:.4g} to {high:.4g}); "
            "pick trials with one pricing with --sweep NAME."
        )
    return float(np.median(values))


def fit_costs(rows: Sequence[TrialRow], pool_cap: float | None = None) -> Costs:
    from scipy.optimize import nnls

    distilled = [r for r in rows if r.n_unlabelled > 0 and r.compute_spent_usd > 0]
    price = _one_value(map(label_price, rows), "price per label")
    hourly = _one_value(map(device_hour_price, distilled), "price per device-hour")
    x = np.array([[1.0, r.n_labels_used, r.n_unlabelled] for r in distilled])
    y = np.array([r.compute_spent_usd for r in distilled])
    scale = np.maximum(x.max(axis=0), 1.0)
    coef = nnls(x / scale, y)[0] / scale
    if coef[2] <= 0:
        coef[2] = float(np.min(y / np.maximum(x[:, 2], 1.0)))
    if pool_cap is None:
        # A budget-mode trial that left compute money unspent while distilling hit the pool.
        capped = [
            r
            for r in distilled
            if not r.grid and r.compute_spent_usd < 0.9 * r.compute_usd - coef[2]
        ]
        pool_cap = max(r.n_unlabelled for r in distilled) if capped else None
    return Costs(price, hourly, float(coef[0]), float(coef[1]), float(coef[2]), pool_cap)
