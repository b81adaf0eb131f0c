"""A constant predictor is never the answer: trials that do not beat their trivial baseline
are named, never ranked "beyond noise", and left out of the learning curve; when none
learned, `sweep best` and the MLflow description say so instead of recommending a split."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from objectives.distill_or_annotate import run_trial
from objectives.standins import synthetic_trial
from objectives.trial_config import TrialConfig, trial_config
from sweep.cli.main import main
from sweep.decide.summary import paragraph
from sweep.tracking.results import (
    TrialRow,
    best_allocations,
    best_of,
    format_best,
    learned_rows,
    row_from_result,
)
from sweep.tracking.schema import combine_seeds
from tests.logged_runs import RunStore, logged_run
from tests.tiny_task import LEARNS

ONE_CLASS = {"top_prediction": "paraphrase", "top_prediction_share": 1.0}


def _run(run_id: str, fraction: float, score: float, width: float, **figures: Any) -> Any:
    """A finished trial run as MLflow returns it; `figures`: the trivial baseline's, as the
    trials log them now (runs logged before have none)."""
    metrics = {"score": score, "score_low": score - width, "score_high": score + width}
    tags = {"doa.sweep": "mrpc-B20-N100", "doa.task": "mrpc", "doa.budget_usd": "20"}
    tags["strategy"] = {0.0: "annotate", 1.0: "distill"}.get(fraction, "mixed")
    tags["metric"] = "accuracy"
    for name, value in figures.items():
        (tags if isinstance(value, str) else metrics)[name] = value
    return logged_run(run_id, fraction, metrics, tags, int(fraction * 100))


def _issue_runs(logged: bool) -> list[Any]:
    """The MRPC-style sweep of issue 34: every distilled trial predicts 'paraphrase' (0.715,
    the majority's share of dev); annotate only scores 0.585; f = 0.48 mostly the minority."""
    trivial = {"trivial_score": 0.715, "trivial_predictor": "majority class 'paraphrase'"}

    def figures(margin: float, share: float, top: str = "paraphrase") -> dict[str, Any]:
        if not logged:
            return {}
        marked = {"degenerate": "student"} if margin - 0.05 <= 0 or share >= 1 else {}
        return {
            **trivial,
            "margin": margin,
            "margin_low": margin - 0.05,
            "margin_high": margin + 0.05,
            "top_prediction": top,
            "top_prediction_share": share,
            **marked,
        }

    return [
        _run("a", 0.0, 0.585, 0.05, **figures(-0.13, 0.55)),
        _run("m", 0.48, 0.430, 0.05, **figures(-0.285, 0.8, "different")),
        *(_run(f"d{k}", f, 0.715, 0.05, **figures(0.0, 1.0)) for k, f in enumerate((0.7, 1.0))),
        *(_run(f"e{k}", f, 0.715, 0.05, **figures(0.0, 1.0)) for k, f in enumerate((0.9, 0.25))),
    ]


def test_the_issues_false_win_was_a_constant_predictor_and_is_no_answer_now() -> None:
    # Runs without the trivial baseline (logged before it existed): today's false win.
    [before] = best_allocations(RunStore(_issue_runs(logged=False)))  # type: ignore[arg-type]
    assert before.versus_annotate_only.endswith("(beyond the interval)")
    # Logged as trials log them now: nothing learned, and no split recommended.
    [after] = best_allocations(RunStore(_issue_runs(logged=True)))  # type: ignore[arg-type]
    assert after.nothing_learned and after.beyond_noise is False
    assert after.versus_annotate_only == "nothing learned"
    table = format_best([after])
    assert "beyond" not in table.split("\n")[1]  # the row itself
    assert "nothing learned at this budget with this recipe" in table
    assert "4 of 6 trials predict one class (100 % of dev rows are 'paraphrase')" in table
    assert "see `sweep doctor --task mrpc --learn`" in table
    rows = [dataclasses.replace(r) for r in _rows(_issue_runs(logged=True))]
    text = paragraph("mrpc", "mrpc-B20-N100", rows, [after])
    assert text.startswith("**B = $20: nothing learned at this budget with this recipe**")
    assert "beyond both intervals" not in text and "spend" not in text.split(".")[0]


def _rows(runs: list[Any]) -> list[TrialRow]:
    from sweep.tracking.results import _row

    return [_row(r) for r in runs]


def test_a_trial_that_learned_is_ranked_above_one_that_did_not() -> None:
    learned = {"margin": 0.2, "margin_low": 0.1, "margin_high": 0.3, "top_prediction_share": 0.6}
    runs = [
        _run("a", 0.0, 0.80, 0.02, trivial_score=0.6, **learned),
        _run("d", 1.0, 0.82, 0.02, trivial_score=0.6, degenerate="student", **ONE_CLASS),
    ]
    [best] = best_allocations(RunStore(runs))  # type: ignore[arg-type]
    assert best.compute_fraction == 0.0 and not best.nothing_learned
    assert best.margin_low == pytest.approx(0.1)
    assert best.note.startswith("1 of 2 trials learned nothing")
    assert [r.run_id for r in learned_rows(_rows(runs))] == ["a"]
    # Runs with no baseline at all (stand-ins, older runs) are kept and ranked as before.
    assert [r.run_id for r in learned_rows(_rows([_run("o", 0.5, 0.7, 0.1)]))] == ["o"]


def test_a_model_that_learned_nothing_in_any_seed_is_named_over_the_seeds() -> None:
    cfg = TrialConfig("fever", 30.0, 100, 0.5, usd_per_device_hour=1.875)
    seeds = [
        dataclasses.replace(synthetic_trial(cfg), degenerate=marked, margin=margin)
        for marked, margin in (("student,teacher", 0.0), ("", 0.1), ("teacher", 0.05))
    ]
    combined = combine_seeds(seeds)
    assert combined["degenerate"] == "student,teacher"
    assert combined["margin"] == pytest.approx(0.05)
    assert combine_seeds([seeds[1]])["degenerate"] == ""
    # A stand-in measures no baseline: nothing is marked, nothing left out.
    assert combine_seeds([synthetic_trial(cfg)])["trivial_score"] is None


def test_plan_takes_its_task_from_a_single_task_file(
    no_signal_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--task-file", str(no_signal_task), "--seed-labels", "10"]) == 2
    err = capsys.readouterr().err
    assert "missing --budget," in err and "missing --task" not in err


def _real_rows(task_file: Path, task: str, fractions: tuple[float, ...]) -> list[TrialRow]:
    """Real tiny trials at one budget, as `sweep best` reads them back."""
    rows = []
    for fraction in fractions:
        values = {"task": task, "task_file": str(task_file), "budget_usd": 12.0}
        values.update(n_seed_labels=20, compute_fraction=fraction, score_test=False)
        result = run_trial(trial_config({**values, **LEARNS, "usd_per_device_hour": 20000.0}))
        row = row_from_result(result, f"{task}-{fraction}", result.sweep_spent_usd)
        rows.append(dataclasses.replace(row, grid=False, sweep="s", start_time_ms=len(rows)))
    return rows


@pytest.mark.slow
def test_labels_without_signal_learn_nothing_and_labels_with_signal_get_an_answer(
    no_signal_task: Path, tiny_task: Path
) -> None:
    # 70/30 labels that do not follow from the inputs: every trial is the majority class
    # at best, and the answer says so, whatever the intervals say about the splits.
    noise = _real_rows(no_signal_task, "mrpc", (0.0, 0.5, 1.0))
    assert all("student" in r.degenerate for r in noise)
    assert {r.trivial_predictor for r in noise} == {"majority class 'paraphrase'"}
    [nothing] = best_of(noise)
    assert nothing.nothing_learned and nothing.beyond_noise is not True
    assert "nothing learned at this budget" in format_best([nothing])
    assert "nothing learned" in paragraph("mrpc", "s", noise, [nothing])
    assert learned_rows(noise) == []  # no point for a learning curve
    # The tiny task's labels follow from its words: the recipe learns, and gets its answer.
    signal = _real_rows(tiny_task, "tiny", (0.0, 0.5))
    [answer] = best_of(signal)
    assert not answer.nothing_learned and answer.margin_low is not None
    assert answer.margin_low > 0 and "nothing learned" not in format_best([answer])
    assert paragraph("tiny", "s", signal, [answer]).startswith("**B = $12: ")


@pytest.mark.slow
def test_doctor_says_when_a_recipe_learns_nothing_and_what_to_try(
    no_signal_task: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    models = ("teacher", "student", "teacher_epochs", "student_epochs", "teacher_lr", "student_lr")
    recipe = [f"--{k.replace('_', '-')}={LEARNS[k]}" for k in models]
    argv = ["doctor", "--root", str(tmp_path), "--task-file", str(no_signal_task)]
    assert main([*argv, "--task", "mrpc", "--learn", "--seed-labels", "60", *recipe]) == 1
    out = capsys.readouterr().out
    assert "warn learns mrpc: teacher" in out and "warn learns mrpc: student" in out
    assert "100 % of dev rows are 'paraphrase'" in out
    assert "FAIL learns mrpc" in out and "--teacher-lr" in out and "--seed-labels 120" in out


def test_the_console_never_calls_a_constant_predictor_the_best() -> None:
    import io

    import optuna

    from sweep.engine.ray_hooks import Progress

    out = io.StringIO()
    study = optuna.create_study(direction="maximize")
    progress = Progress(3, study, out)

    def finish(trial_id: str, fraction: float, score: float, degenerate: str) -> str:
        result = {"stage": "final", "score": score, "compute_fraction": fraction,
                  "degenerate": degenerate, "practitioner_usd": 1.0}  # fmt: skip
        trial = SimpleNamespace(trial_id=trial_id, last_result=result,
                                config={"compute_fraction": fraction})  # fmt: skip
        progress.on_trial_complete(0, [], trial)
        return out.getvalue().splitlines()[-1]

    assert "best none learned yet" in finish("a", 1.0, 0.715, "student,teacher")
    assert "best 0.5900 at f=0.00" in finish("b", 0.0, 0.59, "")
    assert "best 0.5900 at f=0.00" in finish("c", 0.5, 0.715, "student")
