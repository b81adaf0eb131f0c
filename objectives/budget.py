"""Money: budgets, price books and allocations.

Amounts are computed with `decimal.Decimal` and stored as floats rounded to the micro-dollar,
so that "spent + unspent == budget" holds to the cent however the budget is split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_FLOOR, Decimal
from types import MappingProxyType

# The paper's compute price: "est. based on A100 in Google Cloud Platform".
PAPER_USD_PER_DEVICE_HOUR = 1.875

# The paper's price per human label (Kang, Xu, Ritter, ACL 2023, Table 1).
PAPER_USD_PER_LABEL: Mapping[str, float] = MappingProxyType(
    {
        "wlp": 0.260,
        "stanceosaurus": 0.364,
        "fever": 0.129,
        "multipit_id": 0.200,
        "multipit_gen": 0.371,
        "nq": 0.129,
    }
)

_MICRO = Decimal("0.000001")
# The largest budget a sweep takes: amounts are floats kept to the micro-dollar, which a
# float holds exactly only below about 9e9 dollars (and Decimal's 28 digits below 1e22).
MAX_BUDGET_USD = 1e9


def _dec(value: float) -> Decimal:
    # str() keeps the decimal the user typed (0.129, not 0.12900000000000000355...).
    return Decimal(str(value))


def _usd(value: Decimal) -> float:
    return float(value.quantize(_MICRO))


def _check_finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name} >= 0` must hold, but got {name}={value!r}.")


# The paper's fitted compute cost (../shared/docs/paper.md): a linear fit to the poster's
# points, compute dollars = a + b * L / 1000 + d * U / 1000 (L labelled examples the teacher
# fine-tunes on, U unlabelled examples pseudo-labelled and distilled). The paper gives b and d;
# of a it says only "a few dollars": A_USD_ASSUMED = 3 is our assumption, not a paper figure.
A_USD_ASSUMED = 3.0


@dataclass(frozen=True)
class CostModel:
    """Compute dollars of a distillation run by its size, as the paper priced it.

    `a_usd` is the teacher's fixed cost (start-up, evaluation), `b_usd_per_1k_labelled` its
    fine-tuning cost per 1,000 labelled examples, `d_usd_per_1k_unlabelled` the cost of
    pseudo-labelling and distilling 1,000 unlabelled examples.
    """

    a_usd: float
    b_usd_per_1k_labelled: float
    d_usd_per_1k_unlabelled: float

    def __post_init__(self) -> None:
        for name in ("a_usd", "b_usd_per_1k_labelled"):
            _check_finite_nonnegative(name, getattr(self, name))
        d = self.d_usd_per_1k_unlabelled
        if not math.isfinite(d) or d <= 0:
            # d = 0 would make an unlimited pool affordable with any money left over.
            raise ValueError(
                f"`d_usd_per_1k_unlabelled > 0` must hold, but got d_usd_per_1k_unlabelled={d!r}."
            )

    def teacher_usd(self, n_labelled: int) -> float:
        return self.a_usd + self.b_usd_per_1k_labelled * n_labelled / 1000

    def distillation_usd(self, n_unlabelled: int) -> float:
        return self.d_usd_per_1k_unlabelled * n_unlabelled / 1000

    def unlabelled_for(self, usd: float) -> int:
        """The most unlabelled examples `usd` pays to pseudo-label and distil."""
        if usd <= 0:
            return 0
        n = int(usd / (self.d_usd_per_1k_unlabelled / 1000))
        while n > 0 and self.distillation_usd(n) > usd:  # float rounding at the edge
            n -= 1
        return n

    def affordable_unlabelled(self, compute_usd: float, n_labelled: int) -> int:
        """Unlabelled examples left to distil after the teacher; -1 when the teacher itself
        is unaffordable."""
        left = compute_usd - self.teacher_usd(n_labelled)
        if left < 0:
            return -1
        n = self.unlabelled_for(left)
        while n > 0 and self.usd(n_labelled, n) > compute_usd:  # float rounding at the edge
            n -= 1
        return n

    def usd(self, n_labelled: int, n_unlabelled: int) -> float:
        return self.teacher_usd(n_labelled) + self.distillation_usd(n_unlabelled)


# b and d per task: the paper's poster, fitted (../shared/docs/paper.md).
PAPER_COST_MODELS: Mapping[str, CostModel] = MappingProxyType(
    {
        "wlp": CostModel(A_USD_ASSUMED, 15.10, 4.38),
        "stanceosaurus": CostModel(A_USD_ASSUMED, 11.51, 2.26),
        "fever": CostModel(A_USD_ASSUMED, 4.29, 0.78),
        "multipit_id": CostModel(A_USD_ASSUMED, 7.92, 1.24),
        "multipit_gen": CostModel(A_USD_ASSUMED, 9.79, 1.60),
        "nq": CostModel(A_USD_ASSUMED, 6.19, 0.86),
    }
)


@dataclass(frozen=True)
class Budget:
    """An extra budget in US dollars, on top of the seed labels already paid for."""

    usd: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.usd) or self.usd <= 0:
            raise ValueError(
                f"`budget_usd > 0` must hold, but got budget_usd={self.usd!r}. "
                "Pass a positive number of dollars, e.g. --budget 300."
            )
        if self.usd > MAX_BUDGET_USD:
            raise ValueError(
                f"`budget_usd <= {MAX_BUDGET_USD:.0e}` must hold (dollars are kept to the "
                f"micro-dollar), but got budget_usd={self.usd!r}."
            )


@dataclass(frozen=True)
class PriceBook:
    """What labels and compute cost.

    `charge_student_training` is off by default, as in the paper: the compact model's own
    training is paid for whichever way the money goes, so it does not count against B.
    """

    usd_per_label: Mapping[str, float] = field(default_factory=lambda: dict(PAPER_USD_PER_LABEL))
    usd_per_device_hour: float = PAPER_USD_PER_DEVICE_HOUR
    charge_student_training: bool = False

    def __post_init__(self) -> None:
        for task, price in self.usd_per_label.items():
            if not math.isfinite(price) or price <= 0:
                raise ValueError(
                    f"`usd_per_label > 0` must hold, but got usd_per_label[{task!r}]={price!r}."
                )
        if not math.isfinite(self.usd_per_device_hour) or self.usd_per_device_hour <= 0:
            raise ValueError(
                "`usd_per_device_hour > 0` must hold, but got "
                f"usd_per_device_hour={self.usd_per_device_hour!r}."
            )
        object.__setattr__(self, "usd_per_label", MappingProxyType(dict(self.usd_per_label)))

    def label_price(self, task: str) -> float:
        try:
            return self.usd_per_label[task]
        except KeyError:
            known = ", ".join(sorted(self.usd_per_label)) or "none"
            raise ValueError(
                f"No price per label for task={task!r}; priced tasks: {known}. "
                f"Set one with --price {task}=USD or [prices] in the config file."
            ) from None

    def with_overrides(
        self,
        usd_per_label: Mapping[str, float] | None = None,
        usd_per_device_hour: float | None = None,
        charge_student_training: bool | None = None,
    ) -> PriceBook:
        prices = dict(self.usd_per_label)
        prices.update(usd_per_label or {})
        return replace(
            self,
            usd_per_label=prices,
            usd_per_device_hour=(
                self.usd_per_device_hour if usd_per_device_hour is None else usd_per_device_hour
            ),
            charge_student_training=(
                self.charge_student_training
                if charge_student_training is None
                else charge_student_training
            ),
        )

    def device_hours_usd(self, device_seconds: float) -> float:
        _check_finite_nonnegative("device_seconds", device_seconds)
        return device_seconds / 3600.0 * self.usd_per_device_hour


def parse_price_overrides(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Parse `task=usd` strings from the command line."""
    prices: dict[str, float] = {}
    for item in items:
        task, sep, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = math.nan
        if not sep or not task or not math.isfinite(price) or price <= 0:
            raise ValueError(
                f"--price expects TASK=USD with USD > 0 (e.g. --price fever=0.129), "
                f"but got {item!r}."
            )
        prices[task] = price
    return prices


@dataclass(frozen=True)
class Allocation:
    """How one compute fraction of an extra budget is spent.

    Labels are bought with `(1 - f) * B`, whole labels only; the change that cannot buy a
    whole label stays unspent. Compute gets `f * B`.
    """

    task: str
    budget_usd: float
    compute_fraction: float
    usd_per_label: float
    n_seed_labels: int
    n_new_labels: int
    annotation_usd: float
    compute_usd: float
    unspent_usd: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.compute_fraction <= 1.0 or math.isnan(self.compute_fraction):
            raise ValueError(
                "`0 <= compute_fraction <= 1` must hold, but got "
                f"compute_fraction={self.compute_fraction!r}."
            )
        if self.n_seed_labels < 0:
            raise ValueError(
                f"`n_seed_labels >= 0` must hold, but got n_seed_labels={self.n_seed_labels!r}."
            )
        if self.n_new_labels < 0:
            raise ValueError(
                f"`n_new_labels >= 0` must hold, but got n_new_labels={self.n_new_labels!r}."
            )
        spent = _dec(self.annotation_usd) + _dec(self.compute_usd) + _dec(self.unspent_usd)
        if abs(spent - _dec(self.budget_usd)) > Decimal("0.005"):
            raise ValueError(
                "`annotation_usd + compute_usd + unspent_usd == budget_usd` must hold to the "
                f"cent, but got {self.annotation_usd} + {self.compute_usd} + "
                f"{self.unspent_usd} != {self.budget_usd}."
            )
        if self.unspent_usd < 0 or self.unspent_usd >= self.usd_per_label + 1e-9:
            raise ValueError(
                "`0 <= unspent_usd < usd_per_label` must hold, but got "
                f"unspent_usd={self.unspent_usd!r}, usd_per_label={self.usd_per_label!r}."
            )

    @property
    def n_labels(self) -> int:
        """Seed plus purchased labels: every labelled row the trial may train on."""
        return self.n_seed_labels + self.n_new_labels

    @property
    def strategy(self) -> str:
        if self.compute_fraction == 0.0:
            return "annotate"
        if self.n_new_labels == 0:
            return "distill"
        return "mixed"


def allocate(
    task: str,
    budget: Budget | float,
    compute_fraction: float,
    prices: PriceBook,
    n_seed_labels: int = 0,
) -> Allocation:
    """Split `budget` into `floor((1-f)*B/usd_per_label)` labels and `f*B` compute dollars."""
    budget_usd = budget.usd if isinstance(budget, Budget) else Budget(float(budget)).usd
    if not isinstance(compute_fraction, int | float) or not 0.0 <= compute_fraction <= 1.0:
        raise ValueError(
            "`0 <= compute_fraction <= 1` must hold, but got "
            f"compute_fraction={compute_fraction!r}."
        )
    if n_seed_labels < 0:
        raise ValueError(f"`n_seed_labels >= 0` must hold, but got n_seed_labels={n_seed_labels}.")
    price = prices.label_price(task)
    b, f, p = _dec(budget_usd), _dec(compute_fraction), _dec(price)
    compute = (f * b).quantize(_MICRO, rounding=ROUND_FLOOR)
    annotation_budget = b - compute
    n_new = int((annotation_budget / p).to_integral_value(rounding=ROUND_FLOOR))
    annotation = n_new * p
    return Allocation(
        task=task,
        budget_usd=budget_usd,
        compute_fraction=float(compute_fraction),
        usd_per_label=price,
        n_seed_labels=n_seed_labels,
        n_new_labels=n_new,
        annotation_usd=_usd(annotation),
        compute_usd=_usd(compute),
        unspent_usd=_usd(annotation_budget - annotation),
    )


def allocate_counts(
    task: str,
    n_new_labels: int,
    compute_usd: float,
    prices: PriceBook,
    n_seed_labels: int = 0,
) -> Allocation:
    """The allocation of a grid point: exactly `n_new_labels` labels plus a compute allowance.

    The budget is what both cost together, so nothing is left over for labels; the compute
    fraction follows from the two amounts (the paper's labelled x unlabelled grid).
    """
    if n_new_labels < 0:
        raise ValueError(f"`n_new_labels >= 0` must hold, but got n_new_labels={n_new_labels}.")
    _check_finite_nonnegative("compute_usd", compute_usd)
    if compute_usd > MAX_BUDGET_USD:
        raise ValueError(
            f"`compute_usd <= {MAX_BUDGET_USD:.0e}` must hold, but got compute_usd={compute_usd!r}."
        )
    price = prices.label_price(task)
    annotation = n_new_labels * _dec(price)
    compute = _dec(compute_usd).quantize(_MICRO, rounding=ROUND_FLOOR)
    budget = Budget(_usd(annotation + compute)).usd
    return Allocation(
        task=task,
        budget_usd=budget,
        compute_fraction=float(compute / (annotation + compute)),
        usd_per_label=price,
        n_seed_labels=n_seed_labels,
        n_new_labels=n_new_labels,
        annotation_usd=_usd(annotation),
        compute_usd=_usd(compute),
        unspent_usd=0.0,
    )
