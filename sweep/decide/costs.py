"""What a budget buys: the compute prices a task's trials reveal (a fixed teacher cost, a
cost per labelled and per distilled example, found by non-negative least squares), and the
labels, distilled examples and dollars every compute share of a budget gives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sweep.tracking.results import TrialRow, device_hour_price, label_price

Array = NDArray[np.float64]
FRACTIONS = np.linspace(0.0, 1.0, 201)  # the compute shares every recommendation weighs


class NotEnoughTrials(Exception):
    """The trials cannot support a learning curve; the message says what to run."""


@dataclass(frozen=True)
class Costs:
    usd_per_label: float
    usd_per_device_hour: float
    teacher_usd: float  # c0
    usd_per_labelled: float  # c1: teacher fine-tuning per labelled example
    usd_per_unlabelled: float  # c2: soft labels and distillation per unlabelled example
    pool_cap: float | None  # most unlabelled examples a trial could use; None: no cap seen

    def buys(self, budget_usd: float, seed_labels: int) -> tuple[Array, Array, Array]:
        """(labels, unlabelled, dollars spent) for every fraction of FRACTIONS."""
        new = np.floor((1 - FRACTIONS) * budget_usd / self.usd_per_label + 1e-9)
        labelled = seed_labels + new
        compute = FRACTIONS * budget_usd
        teacher = self.teacher_usd + self.usd_per_labelled * labelled
        affordable = np.floor(np.maximum(compute - teacher, 0.0) / self.usd_per_unlabelled)
        unlabelled = np.where(compute >= teacher, affordable, 0.0)
        if self.pool_cap is not None:
            unlabelled = np.minimum(unlabelled, self.pool_cap)
        spent_compute = np.where(unlabelled > 0, teacher + self.usd_per_unlabelled * unlabelled, 0)
        return labelled, unlabelled, new * self.usd_per_label + spent_compute


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
