"""The PNG plots (matplotlib's Agg backend, no display): which files each writes, where, at
what size, and what the figures show, read off the figures before they are closed."""

from __future__ import annotations

import struct
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from sweep.decide import plots
from sweep.decide.frontier import fit
from sweep.tracking.results import TrialRow
from tests.sweep_tests.test_frontier import MODEL, sweeps

DPI = 110  # plots._save's


def _row(**values: Any) -> TrialRow:
    required = [f.name for f in fields(TrialRow) if f.default is MISSING]
    defaults: dict[str, Any] = dict.fromkeys(required, 0)
    defaults.update(run_id="r", sweep="s", task="fever", strategy="mixed", score=0.5)
    return TrialRow(**{**defaults, **values})


def _budget_rows() -> list[TrialRow]:
    """Two budgets, annotate only and two mixed shares each, finished in this order."""
    points = [
        (100.0, 0.0, 0.60),
        (100.0, 0.4, 0.72),
        (100.0, 0.8, 0.65),
        (300.0, 0.0, 0.70),
        (300.0, 0.4, 0.81),
        (300.0, 0.8, 0.78),
    ]
    rows = []
    for i, (budget, fraction, score) in enumerate(points):
        rows.append(
            _row(
                run_id=f"b{i}",
                budget_usd=budget,
                compute_fraction=fraction,
                score=score,
                strategy="annotate" if fraction == 0.0 else "mixed",
                practitioner_usd=budget * (1.0 - 0.1 * i / 6),
                start_time_ms=i,
            )
        )
    return rows


def _grid_rows() -> list[TrialRow]:
    """A 2 x 2 grid: more labels and more compute both help, at a price."""
    points = [(100, 0, 0.6), (100, 3000, 0.7), (1000, 0, 0.8), (1000, 3000, 0.85)]
    rows = []
    for labels, unlabelled, score in points:
        compute = 50.0 if unlabelled else 0.0
        rows.append(
            _row(
                run_id=f"g{labels}-{unlabelled}",
                sweep="fever-grid",
                grid=True,
                budget_usd=labels * 0.129 + compute,
                n_labels_used=labels,
                n_unlabelled=float(unlabelled),
                score=score,
                compute_spent_usd=compute,
                practitioner_usd=labels * 0.129 + compute,
            )
        )
    return rows


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """Each figure a plot function saves, by file name (read before it is closed)."""
    seen: dict[str, Figure] = {}
    save = plots._save

    def spy(fig: Figure, path: Path) -> Path:
        seen[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def _legend(fig: Figure, axis: int = 0) -> list[str]:
    legend = fig.axes[axis].get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def test_the_backend_needs_no_display() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_a_budget_sweep_gets_three_plots_in_a_new_folder_and_leaves_no_figure_open(
    tmp_path: Path,
) -> None:
    out = tmp_path / "a" / "report"  # not there yet
    paths = plots.all_plots(_budget_rows(), out)
    assert [p.name for p in paths] == [
        "fever_score_vs_fraction.png",
        "fever_pareto.png",
        "fever_history.png",
    ]
    assert sorted(out.iterdir()) == sorted(paths)
    for path in paths:
        assert _png_size(path) == (7 * DPI, int(4.5 * DPI)), path.name
        assert path.stat().st_size > 5_000, path.name  # a drawn figure, not an empty canvas
    assert plt.get_fignums() == []  # a long sweep's summaries must not pile up figures


def test_grid_points_get_their_own_plot_and_no_budget_plots(tmp_path: Path) -> None:
    assert [p.name for p in plots.all_plots(_grid_rows(), tmp_path)] == ["fever_grid.png"]
    mixed = plots.all_plots([*_grid_rows(), *_budget_rows()], tmp_path / "both")
    assert [p.name for p in mixed] == [
        "fever_grid.png",
        "fever_score_vs_fraction.png",
        "fever_pareto.png",
        "fever_history.png",
    ]
    assert all(p.is_file() and p.stat().st_size > 0 for p in mixed)
    assert _png_size(mixed[0]) == (int(7.5 * DPI), int(4.8 * DPI))


def test_score_against_share_has_one_series_per_strategy(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    plots.score_vs_fraction(_budget_rows(), tmp_path / "s.png")
    fig = figures["s.png"]
    assert _legend(fig) == ["annotate", "mixed"]  # no empty "distill" series
    assert "budgets [100.0, 300.0]" in fig.axes[0].get_title()


def test_score_against_share_draws_the_trivial_baseline_and_each_90_percent_interval(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    rows = [
        _row(
            run_id=f"r{i}",
            compute_fraction=fraction,
            score=score,
            score_low=score - 0.05,
            score_high=score + 0.02,
            strategy="annotate" if fraction == 0.0 else "distill",
            trivial_score=0.715,
            trivial_predictor="majority class 'paraphrase'",
            top_prediction_share=share,
            degenerate="" if share < 1.0 else "student",
        )
        for i, (fraction, score, share) in enumerate([(0.0, 0.80, 0.6), (1.0, 0.715, 1.0)])
    ]
    plots.score_vs_fraction(rows, tmp_path / "t.png")
    fig = figures["t.png"]
    assert _legend(fig) == [
        "trivial: majority class 'paraphrase'",
        "annotate",
        "distill (learned nothing)",
    ]
    ax = fig.axes[0]
    (trivial,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert list(trivial.get_ydata()) == [0.715, 0.715]
    # One seed, no spread over seeds: the bars are the intervals, not zero.
    (bars,) = ax.containers[0].lines[2]
    (bottom, top), *_ = bars.get_segments()
    assert (bottom[1], top[1]) == pytest.approx((0.75, 0.82))
    assert plots.interval_errors(rows).ravel() == pytest.approx([0.05, 0.05, 0.02, 0.02])


def test_pareto_has_a_series_per_budget_and_the_front(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    plots.pareto(_budget_rows(), tmp_path / "p.png")
    assert _legend(figures["p.png"]) == ["B=$100", "B=$300", "Pareto front"]


def test_history_draws_the_best_score_so_far(tmp_path: Path, figures: dict[str, Figure]) -> None:
    rows = _budget_rows()
    shuffled = [rows[i] for i in (3, 0, 5, 1, 4, 2)]  # the plot orders by start time
    plots.history(shuffled, tmp_path / "h.png")
    (line,) = figures["h.png"].axes[0].get_lines()
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(line.get_ydata()) == [0.60, 0.72, 0.72, 0.72, 0.81, 0.81]


def test_the_grid_plot_labels_each_front_point_with_its_labels_and_compute_share(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    plots.grid(_grid_rows(), tmp_path / "g.png")
    ax = figures["g.png"].axes[0]
    assert _legend(figures["g.png"]) == ["U=0", "U=3000"]
    notes = sorted(text.get_text() for text in ax.texts)
    # The front: 100 labels alone (the cheapest), then 100 labels plus compute, then 1,000
    # labels, then 1,000 plus compute.
    assert notes == [
        "L=100, 0% compute",
        "L=100, 79% compute",
        "L=1000, 0% compute",
        "L=1000, 28% compute",
    ]
    assert ax.get_xscale() == "log"


def test_the_frontier_plot_shows_the_share_and_the_front(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    rows = sweeps((100.0, 300.0))
    model = fit(rows, "fever", cost=MODEL)
    path = plots.frontier(model, [200.0, 1000.0], rows, tmp_path / "f.png")
    assert path.is_file() and _png_size(path) == (11 * DPI, int(4.5 * DPI))
    left, right = figures["f.png"].axes
    (share,) = left.get_lines()
    assert min(share.get_xdata()) == pytest.approx(100.0)  # the lowest budget with trials
    assert max(share.get_xdata()) == pytest.approx(1000.0)  # up to the highest asked for
    assert all(0.0 <= f <= 1.0 for f in share.get_ydata())
    (trials,) = right.containers  # the measured trials, each with its interval
    assert len(trials.lines[0].get_xdata()) == len(rows)
