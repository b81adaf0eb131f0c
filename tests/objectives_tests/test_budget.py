from decimal import Decimal

import pytest

# A dev dependency only: the GPU check's machine (torch and transformers alone) skips this.
pytest.importorskip("hypothesis")

from hypothesis import given
from hypothesis import strategies as st

from objectives.budget import (
    PAPER_USD_PER_DEVICE_HOUR,
    Allocation,
    Budget,
    PriceBook,
    allocate,
    allocate_counts,
    parse_price_overrides,
)

budgets = st.decimals(min_value="0.01", max_value="100000", places=2).map(float)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
prices = st.sampled_from([0.129, 0.2, 0.26, 0.364, 0.371, 0.05, 1.0, 3.7])
BOOK = PriceBook()


def _book(price: float) -> PriceBook:
    return BOOK.with_overrides(usd_per_label={"t": price})


@given(budgets, fractions, prices)
def test_allocation_never_spends_more_than_the_budget(b: float, f: float, p: float) -> None:
    a = allocate("t", b, f, _book(p))
    spent = Decimal(str(a.annotation_usd)) + Decimal(str(a.compute_usd))
    assert spent <= Decimal(str(b))
    assert a.n_new_labels * Decimal(str(p)) <= Decimal(str(b)) * (1 - Decimal(str(f))) + Decimal(
        "0.000001"
    )


@given(budgets, fractions, prices)
def test_spent_plus_unspent_is_the_budget_to_the_cent(b: float, f: float, p: float) -> None:
    a = allocate("t", b, f, _book(p))
    total = (
        Decimal(str(a.annotation_usd)) + Decimal(str(a.compute_usd)) + Decimal(str(a.unspent_usd))
    )
    assert abs(total - Decimal(str(b))) < Decimal("0.005")
    assert 0 <= a.unspent_usd < p


@given(budgets, fractions, fractions, prices)
def test_labels_are_monotone_in_the_annotation_share(
    b: float, f1: float, f2: float, p: float
) -> None:
    low, high = sorted((f1, f2))
    assert (
        allocate("t", b, low, _book(p)).n_new_labels
        >= allocate("t", b, high, _book(p)).n_new_labels
    )


def test_allocation_matches_the_formula() -> None:
    a = allocate("fever", 300, 0.25, BOOK, n_seed_labels=1000)
    assert a.n_new_labels == 1744  # floor(225 / 0.129)
    assert a.compute_usd == 75.0
    assert a.annotation_usd == pytest.approx(224.976)
    assert a.unspent_usd == pytest.approx(0.024)
    assert a.n_labels == 2744
    assert a.strategy == "mixed"
    assert allocate("fever", 300, 0.0, BOOK).strategy == "annotate"
    assert allocate("fever", 300, 1.0, BOOK).strategy == "distill"


def test_paper_prices_are_built_in() -> None:
    assert BOOK.usd_per_device_hour == PAPER_USD_PER_DEVICE_HOUR == 1.875
    assert BOOK.label_price("wlp") == 0.26
    assert BOOK.label_price("nq") == 0.129
    assert not BOOK.charge_student_training
    assert BOOK.device_hours_usd(3600) == pytest.approx(1.875)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Budget(-5), "budget_usd > 0` must hold, but got budget_usd=-5"),
        (lambda: Budget(0), "budget_usd=0"),
        (lambda: allocate("fever", 10, 1.3, BOOK), "compute_fraction=1.3"),
        (lambda: allocate("fever", 10, -0.1, BOOK), "compute_fraction=-0.1"),
        (lambda: allocate("fever", 10, 0.5, BOOK, n_seed_labels=-1), "n_seed_labels=-1"),
        (lambda: allocate("nope", 10, 0.5, BOOK), "task='nope'"),
        (lambda: PriceBook(usd_per_device_hour=0), "usd_per_device_hour=0"),
        (lambda: PriceBook(usd_per_label={"x": -1.0}), "usd_per_label['x']=-1.0"),
        (lambda: parse_price_overrides(["fever"]), "TASK=USD"),
        (lambda: parse_price_overrides(["fever=abc"]), "'fever=abc'"),
    ],
)
def test_invalid_money_names_the_value(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()  # type: ignore[operator]


def test_allocation_checks_its_own_ledger() -> None:
    with pytest.raises(ValueError, match="must hold to the cent"):
        Allocation("t", 10.0, 0.5, 1.0, 0, 5, 5.0, 5.0, 1.0)


def test_overrides_keep_the_rest() -> None:
    book = BOOK.with_overrides(usd_per_label={"fever": 0.2}, usd_per_device_hour=3.0)
    assert book.label_price("fever") == 0.2
    assert book.label_price("nq") == 0.129
    assert book.usd_per_device_hour == 3.0
    assert parse_price_overrides(["fever=0.2", "nq=1"]) == {"fever": 0.2, "nq": 1.0}


@given(
    st.integers(min_value=1, max_value=2000),
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=10**6),
)
def test_label_subsets_are_nested_and_never_meet_the_pool(
    n_pool: int, a: int, b: int, seed: int
) -> None:
    from objectives.data import split_pool

    small, large = sorted((min(a, n_pool), min(b, n_pool)))
    s, big = split_pool(n_pool, small, seed), split_pool(n_pool, large, seed)
    assert set(s.labelled) <= set(big.labelled)
    assert not set(big.labelled) & set(big.unlabelled)
    assert sorted(big.labelled + big.unlabelled) == list(range(n_pool))


@given(st.integers(min_value=0, max_value=100_000), budgets, prices)
def test_grid_point_allocation_buys_exactly_its_labels(n: int, compute: float, p: float) -> None:
    a = allocate_counts("t", n, compute, _book(p))
    assert a.n_new_labels == n and a.unspent_usd == 0.0
    assert Decimal(str(a.annotation_usd)) == (n * Decimal(str(p))).quantize(Decimal("0.000001"))
    assert a.compute_usd == compute
    assert abs(
        Decimal(str(a.annotation_usd)) + Decimal(str(a.compute_usd)) - Decimal(str(a.budget_usd))
    ) < Decimal("0.000002")
    assert a.compute_fraction == pytest.approx(compute / (n * p + compute))


def test_grid_mode_trial_config_splits_labels_then_compute() -> None:
    from objectives.trial_config import TrialConfig

    cfg = TrialConfig("fever", 12.9 + 50.0, 0, 0.0, n_labels=100)
    a = cfg.allocation(cfg.task_spec())
    assert (a.n_new_labels, a.annotation_usd, a.compute_usd) == (100, 12.9, 50.0)
    assert a.strategy == "mixed"
    too_many = TrialConfig("fever", 10.0, 0, 0.0, n_labels=100)
    with pytest.raises(ValueError, match=r"100 labels cost \$12.9 and budget_usd=10"):
        too_many.allocation(too_many.task_spec())
