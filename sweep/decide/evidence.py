"""Which finished trials are evidence of one landscape: those of the task measured with the
same recipe (objective, replay table, preset, teacher and student), whatever command ran
them (`sweep run`, `sweep grid`, `sweep plan`'s pilots). Read from the sweeps' parent runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from objectives.budget import CostModel
from objectives.tasks import get_task
from sweep.decide import frontier, posterior
from sweep.tracking.mlflow_store import Tracker
from sweep.tracking.results import BestAllocation, TrialRow, finished_trials

RECIPE = ("objective", "replay_table", "preset", "trial.teacher", "trial.student")
Recipe = tuple[tuple[str, str], ...]


def recipe(params: Mapping[str, Any]) -> Recipe:
    """What makes two sweeps' trials points of one landscape, from a sweep's (flattened)
    params; what a sweep left unset reads as its default."""
    defaults = {"objective": "real"}
    return tuple((k, str(params.get(k, defaults.get(k, "None")))) for k in RECIPE)


def recipe_of(tracker: Tracker, task: str, sweep: str) -> Recipe:
    run_id = tracker.find_sweep_run(task, sweep)
    params = tracker.client.get_run(run_id).data.params if run_id else {}
    return recipe(params)


def alike(
    tracker: Tracker, task: str, wanted: Recipe, trials: Sequence[TrialRow] | None = None
) -> list[TrialRow]:
    """The task's finished trials (read from the store unless `trials` holds them already)
    whose sweep shares the recipe `wanted`."""
    rows = finished_trials(tracker, task) if trials is None else trials
    recipes = {s: recipe_of(tracker, task, s) for s in {r.sweep for r in rows}}
    return [r for r in rows if recipes[r.sweep] == wanted]


def task_cost_model(task: str) -> CostModel | None:
    """A built-in task's compute cost model (a task file's task: None, its trials price it)."""
    try:
        return get_task(task).cost_model
    except ValueError:
        return None


def answer_from(
    rows: Sequence[TrialRow], best: BestAllocation, draws: int = posterior.DRAWS
) -> frontier.Recommendation | None:
    """The landscape posterior's answer at the best trial's budget and seed labels, given
    `rows` (None: nothing learned, or no prices to read)."""
    if best.nothing_learned:
        return None
    try:
        model = frontier.fit(
            rows, best.task, task_cost_model(best.task), best.n_seed_labels, leave_one_out=False
        )
        return frontier.recommend(model, best.budget_usd, draws)
    except (frontier.NotEnoughTrials, ValueError):
        return None


def answer_at(
    tracker: Tracker,
    best: BestAllocation,
    draws: int = posterior.DRAWS,
    trials: Sequence[TrialRow] | None = None,
) -> frontier.Recommendation | None:
    """The one answer `sweep best`, the sweep's last line and its MLflow description give:
    every trial of the task measured with the best trial's recipe, each weighed by its own
    noise (`trials`: the task's finished trials, when the caller has read them)."""
    rows = alike(tracker, best.task, recipe_of(tracker, best.task, best.sweep), trials)
    return answer_from(rows, best, draws)
