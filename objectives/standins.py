"""Stand-in objectives: any sweep runs in seconds on a landscape that costs nothing.

Both turn an allocation into (labelled L, unlabelled U) with a linear compute-cost model,
`compute_usd = a + b * L / 1000 + d * U / 1000` (the paper's poster, fitted per task; see
`objectives.budget.PAPER_COST_MODELS`; a task file's own `[cost_model]` for other tasks),
then read a score off a landscape:
- `synthetic_trial`: closed-form saturating curves (a teacher that saturates in L, a student
  that saturates in L + w * U but never beats its teacher);
- `replay_trial`: a table of measured results (CSV: labels, unlabelled, compute_usd, score)
  on an L x U grid, interpolated bilinearly in (log L, log(1 + U)).
Their results carry both ledgers like the real objective's, with `sweep_spent_usd` = 0.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from objectives.budget import PAPER_COST_MODELS, Allocation, CostModel
from objectives.trial_config import Report, TrialConfig, TrialResult

DEFAULT_COST_MODEL = PAPER_COST_MODELS["fever"]


@dataclass(frozen=True)
class Landscape:
    """Saturating curves; scores in [0, 1]."""

    student_max: float = 0.90
    student_scale: float = 1.6
    student_exponent: float = 0.35
    unlabelled_weight: float = 0.3
    teacher_max: float = 0.95
    teacher_scale: float = 0.9
    teacher_exponent: float = 0.5
    seed_noise: float = 0.004

    def teacher(self, n_labelled: int) -> float:
        return float(
            self.teacher_max
            - self.teacher_scale * float(max(1, n_labelled)) ** -self.teacher_exponent
        )

    def _student_without_noise(self, n_labelled: int, n_unlabelled: int) -> float:
        effective = max(1.0, n_labelled + self.unlabelled_weight * n_unlabelled)
        value: float = self.student_max - self.student_scale * effective**-self.student_exponent
        if n_unlabelled > 0:
            value = min(value, self.teacher(n_labelled))
        return value

    def student(self, n_labelled: int, n_unlabelled: int, seed: int) -> float:
        value = self._student_without_noise(n_labelled, n_unlabelled)
        # Deterministic per seed, like a real trial's variance between seeds.
        jitter = self.seed_noise * math.sin(12.9898 * (seed + 1) + n_labelled * 0.001)
        return min(1.0, max(0.0, value + jitter))

    def student_interval(self, n_labelled: int, n_unlabelled: int) -> tuple[float, float]:
        """(score_low, score_high): every score the seed noise can give, so that a sweep on
        this landscape can tell a real difference from noise as a real one does."""
        value = self._student_without_noise(n_labelled, n_unlabelled)
        return max(0.0, value - self.seed_noise), min(1.0, value + self.seed_noise)


def _split(cfg: TrialConfig, cost: CostModel, pool: int) -> tuple[Allocation, int, int, str, float]:
    """(allocation, labelled, unlabelled, teacher status, compute spent) of a config."""
    allocation = cfg.allocation(cfg.task_spec())
    n_labelled = allocation.n_labels
    if allocation.compute_usd == 0:
        return allocation, n_labelled, 0, "not_needed", 0.0
    n_unlabelled = cost.affordable_unlabelled(allocation.compute_usd, n_labelled)
    if n_unlabelled < 0:
        return allocation, n_labelled, 0, "unaffordable", 0.0
    n_unlabelled = min(n_unlabelled, pool)
    if cfg.max_unlabelled is not None:  # 0 is a cap too: no pool
        n_unlabelled = min(n_unlabelled, cfg.max_unlabelled)
    return (
        allocation,
        n_labelled,
        n_unlabelled,
        "finished",
        cost.usd(n_labelled, n_unlabelled),
    )


def _result(
    cfg: TrialConfig,
    allocation: Allocation,
    score: float,
    teacher: float | None,
    status: str,
    n_labelled: int,
    n_unlabelled: int,
    compute_spent: float,
    metric: str,
    interval: tuple[float, float],
) -> TrialResult:
    return TrialResult.from_allocation(
        allocation,
        compute_spent_usd=compute_spent,
        device_seconds=compute_spent / cfg.usd_per_device_hour * 3600,
        seed=cfg.seed,
        metric=metric,
        score=score,
        test_score=None,
        teacher_score=teacher,
        teacher_status=status,
        n_labels_used=n_labelled,
        n_unlabelled=n_unlabelled,
        sweep_device_seconds=0.0,
        sweep_spent_usd=0.0,
        teacher_cache="off",
        soft_cache="off",
        score_low=interval[0],
        score_high=interval[1],
    )


def _report_progress(report: Report, final: float, work_seconds: float, n_reports: int) -> None:
    """Intermediate scores rising to the final one, as distillation epochs would."""
    for k in range(1, n_reports + 1):
        if work_seconds:
            time.sleep(work_seconds / n_reports)
        report({"stage": "distill", "epoch": k, "score": final * (0.7 + 0.3 * k / n_reports)})


def synthetic_trial(
    cfg: TrialConfig,
    report: Report | None = None,
    landscape: Landscape = Landscape(),
    cost: CostModel | None = None,
    pool: int = 100_000,
    work_seconds: float = 0.0,
) -> TrialResult:
    """A closed-form trial; `work_seconds` of sleep stands in for training time."""
    report = report or (lambda _: None)
    cost = cost or cfg.task_spec().cost_model or DEFAULT_COST_MODEL
    allocation, n_labelled, n_unlabelled, status, spent = _split(cfg, cost, pool)
    score = landscape.student(n_labelled, n_unlabelled, cfg.seed)
    teacher = landscape.teacher(n_labelled) if status == "finished" else None
    _report_progress(report, score, work_seconds, cfg.n_reports)
    interval = landscape.student_interval(n_labelled, n_unlabelled)
    result = _result(
        cfg,
        allocation,
        score,
        teacher,
        status,
        n_labelled,
        n_unlabelled,
        spent,
        "synthetic",
        interval,
    )
    report({"stage": "final", **result.to_dict()})
    return result


@dataclass(frozen=True)
class ReplayTable:
    """Measured scores on an L x U grid, and the compute cost model fitted to them."""

    labelled: tuple[int, ...]
    unlabelled: tuple[int, ...]
    scores: dict[tuple[int, int], float]
    cost: CostModel

    @classmethod
    def from_csv(cls, path: str | Path) -> ReplayTable:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Replay table {str(path)!r} does not exist; pass a CSV file.")
        needed = ("labels", "unlabelled", "compute_usd", "score")
        rows: list[tuple[int, int, float, float]] = []
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path}: missing column {missing[0]!r}; a replay table needs columns "
                    f"{', '.join(needed)}."
                )
            for line_no, row in enumerate(reader, start=2):
                try:
                    rows.append(
                        (
                            int(row["labels"]),
                            int(row["unlabelled"]),
                            float(row["compute_usd"]),
                            float(row["score"]),
                        )
                    )
                except (TypeError, ValueError):
                    raise ValueError(f"{path}:{line_no}: expected numbers, got {row!r}.") from None
        if not rows:
            raise ValueError(f"{path}: the replay table holds no rows.")
        labelled = tuple(sorted({r[0] for r in rows}))
        unlabelled = tuple(sorted({r[1] for r in rows}))
        scores = {(r[0], r[1]): r[3] for r in rows}
        for l_ in labelled:
            for u in unlabelled:
                if (l_, u) not in scores:
                    raise ValueError(
                        f"{path}: the table is not a full grid; labels={l_}, unlabelled={u} "
                        "is missing."
                    )
        return cls(labelled, unlabelled, scores, _fit_cost([r for r in rows if r[1] > 0]))

    def score(self, n_labelled: int, n_unlabelled: int) -> float:
        """Bilinear in (log L, log(1 + U)), clamped to the table's range."""
        x0, x1, tx = _bracket(self.labelled, n_labelled, lambda n: math.log(max(n, 1)))
        y0, y1, ty = _bracket(self.unlabelled, n_unlabelled, math.log1p)
        s = self.scores
        return (
            (1 - tx) * (1 - ty) * s[(x0, y0)]
            + tx * (1 - ty) * s[(x1, y0)]
            + (1 - tx) * ty * s[(x0, y1)]
            + tx * ty * s[(x1, y1)]
        )


def _bracket(
    points: tuple[int, ...], value: int, f: Callable[[float], float]
) -> tuple[int, int, float]:
    if value <= points[0]:
        return points[0], points[0], 0.0
    if value >= points[-1]:
        return points[-1], points[-1], 0.0
    for low, high in itertools.pairwise(points):
        if low <= value <= high:
            span = f(high) - f(low)  # log1p(0) = 0: U = 0 is a point of the axis like any
            return low, high, (f(value) - f(low)) / span if span else 0.0
    raise AssertionError("unreachable")


def _fit_cost(rows: list[tuple[int, int, float, float]]) -> CostModel:
    """Least squares of compute_usd on (1, L/1000, U/1000) over distillation rows."""
    import numpy as np

    if len(rows) < 3:
        raise ValueError("A replay table needs at least 3 rows with unlabelled > 0 to fit costs.")
    x = np.array([[1.0, r[0] / 1000, r[1] / 1000] for r in rows])
    y = np.array([r[2] for r in rows])
    a, b, d = np.linalg.lstsq(x, y, rcond=None)[0]
    return CostModel(max(0.0, float(a)), max(0.0, float(b)), max(1e-9, float(d)))


def replay_trial(
    cfg: TrialConfig,
    report: Report | None = None,
    table: ReplayTable | None = None,
    work_seconds: float = 0.0,
) -> TrialResult:
    """A trial read off a measured table (`table` required)."""
    if table is None:
        raise ValueError("replay_trial needs a table: --objective replay --replay-table FILE.")
    report = report or (lambda _: None)
    pool = max(table.unlabelled)
    allocation, n_labelled, n_unlabelled, status, spent = _split(cfg, table.cost, pool)
    score = table.score(n_labelled, n_unlabelled)
    _report_progress(report, score, work_seconds, cfg.n_reports)
    # A table holds one measured score per point and no noise model: a zero-width interval
    # (a difference between replayed points is never called noise).
    result = _result(
        cfg,
        allocation,
        score,
        None,
        status,
        n_labelled,
        n_unlabelled,
        spent,
        "replay",
        (score, score),
    )
    report({"stage": "final", **result.to_dict()})
    return result


def write_replay_table(rows: list[Any], path: Path) -> Path:
    """The grid's results in the format `--objective replay --replay-table` reads
    (`ReplayTable.from_csv`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["labels", "unlabelled", "compute_usd", "score"])
        for r in sorted(rows, key=lambda r: (r.n_labels_used, r.n_unlabelled)):
            writer.writerow([r.n_labels_used, int(r.n_unlabelled), r.compute_spent_usd, r.score])
    return path
