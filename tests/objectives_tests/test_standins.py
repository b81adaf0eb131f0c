from pathlib import Path

import pytest

from objectives.standins import (
    PAPER_COST_MODELS,
    CostModel,
    Landscape,
    ReplayTable,
    replay_trial,
    synthetic_trial,
)
from objectives.trial_config import trial_config


def _cfg(fraction: float, budget: float = 300.0) -> object:
    return trial_config(
        {"task": "fever", "budget_usd": budget, "n_seed_labels": 1000, "compute_fraction": fraction}
    )


def test_cost_model_buys_unlabelled_examples_after_the_teacher() -> None:
    cost = CostModel(3.0, 4.29, 0.78)
    assert cost.teacher_usd(1000) == pytest.approx(7.29)
    assert cost.affordable_unlabelled(7.29 + 0.78, 1000) == 1000
    assert cost.affordable_unlabelled(5.0, 1000) == -1
    assert set(PAPER_COST_MODELS) == {
        "wlp",
        "stanceosaurus",
        "fever",
        "multipit_id",
        "multipit_gen",
        "nq",
    }


def test_synthetic_trial_keeps_the_money_exact_and_reports() -> None:
    reports: list[dict[str, object]] = []
    for fraction in (0.0, 0.01, 0.3, 1.0):
        r = synthetic_trial(_cfg(fraction), reports.append)  # type: ignore[arg-type]
        assert r.compute_spent_usd <= r.compute_usd + 1e-9
        assert r.annotation_usd + r.compute_spent_usd + r.unspent_usd == pytest.approx(300.0)
    assert reports and reports[-1]["stage"] == "final"
    starved = synthetic_trial(_cfg(0.01))  # type: ignore[arg-type]
    assert starved.teacher_status == "unaffordable" and starved.n_unlabelled == 0


def test_landscape_saturates_and_the_student_never_beats_its_teacher() -> None:
    land = Landscape(seed_noise=0.0)
    assert land.student(100, 0, 0) < land.student(1000, 0, 0) < land.student(10000, 0, 0)
    assert land.student(100, 10**6, 0) <= land.teacher(100)


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("labels,unlabelled,compute_usd,score\n" + "\n".join(rows) + "\n")
    return path


def test_replay_table_interpolates_and_fits_costs(tmp_path: Path) -> None:
    rows = []
    for labels in (100, 1000):
        for unlabelled in (0, 1000, 10000):
            cost = 2 + 5 * labels / 1000 + 1 * unlabelled / 1000
            rows.append(f"{labels},{unlabelled},{cost},{labels / 2000 + unlabelled / 40000}")
    table = ReplayTable.from_csv(_table(tmp_path / "t.csv", rows))
    assert table.cost.b_usd_per_1k_labelled == pytest.approx(5)
    assert table.cost.d_usd_per_1k_unlabelled == pytest.approx(1)
    assert table.score(1000, 10000) == pytest.approx(0.75)  # exact on grid points
    assert table.score(100, 0) < table.score(300, 0) < table.score(1000, 0)
    assert table.score(50_000, 10**6) == pytest.approx(0.75)  # clamped outside the range
    result = replay_trial(_cfg(0.5, 20.0), table=table)  # type: ignore[arg-type]
    assert result.compute_spent_usd <= result.compute_usd


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["100,0,0,0.5", "100,10,3,0.6", "1000,0,0,0.7"], "not a full grid"),
        (["100,x,0,0.5"], r"t.csv:2: expected numbers"),
        ([], "holds no rows"),
    ],
)
def test_bad_replay_tables(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplayTable.from_csv(_table(tmp_path / "t.csv", rows))
    with pytest.raises(ValueError, match="does not exist"):
        ReplayTable.from_csv(tmp_path / "missing.csv")
