"""The sweep's default search: an Optuna sampler that takes the compute share from the
landscape posterior (`sweep.decide.posterior`) and every other parameter (the distillation
temperature) from TPE.

Its first trial is the posterior's answer (the prior's, on a task with no trial yet); the
annotate-only trial that `sweep best` compares against comes at ANNOTATE_AT; every other
share is drawn by Thompson sampling (the best share of one landscape drawn from the
posterior, among the shares that spend B). The posterior is rebuilt from the evidence on
every call, as Optuna's model-based samplers read the study: a resumed sweep rebuilds the
same one, and trials in flight (`--concurrency`) each get their own draw. No draw lands on
an allocation already measured or in flight: a trial repeated with its seed repeats its score.
`bench/search_efficiency.py --suite` measures it against TPE, random, the paper's grid and
the previous default (f = 0, 1, 0.5, then TPE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from sweep.decide.costs import Costs
from sweep.decide.evidence import Recipe, alike
from sweep.decide.posterior import Observation, answer, observations, thompson, update
from sweep.decide.prior import Hypothesis

# Where annotate only costs the answer least, measured with bench/search_efficiency.py
# --annotate-at (FEVER, WLP, NQ at 100 seed labels, 3 seeds; regret after 3 and 10 trials):
# second 0.10 and 0.06 points, third 0.39 and 0.06, last 0.23 and 0.06, never 0.23 and
# 0.12. Its score tells the posterior the task's level and the annotation side of the
# landscape; first, it would delay the prior's answer by a trial.
ANNOTATE_AT = 1
FIRST_WITH_DEFAULTS = 3  # trials that take the configured temperature before TPE searches it
APART = 0.02  # shares closer than this measure nearly the same point
_LIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)


class Evidence(Protocol):
    """What the sampler knows when it is asked: the observations of the task's landscape
    and the prices that turn a share of B into labels and distilled examples."""

    def __call__(self, study: optuna.Study) -> tuple[Sequence[Observation], Costs]: ...


@dataclass(frozen=True)
class StudyEvidence:
    """The study's own finished trials, each share read as what it buys at fixed prices
    (plain Optuna studies: the benchmark and tests)."""

    costs: Costs
    budget_usd: float
    seed_labels: int
    sd: float

    def __call__(self, study: optuna.Study) -> tuple[Sequence[Observation], Costs]:
        import numpy as np

        out = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            share = np.array([float(t.params.get("compute_fraction", 0.0))])
            budget = float(t.params.get("budget_usd", self.budget_usd))
            buys = self.costs.buys(budget, self.seed_labels, share)
            value = t.values[0] if t.values else float("nan")
            out.append(Observation(buys.labelled[0], buys.unlabelled[0], value, self.sd))
        return out, self.costs


class PosteriorSampler(optuna.samplers.BaseSampler):
    """`compute_fraction` from the landscape posterior; anything else from `independent`."""

    def __init__(
        self,
        hypotheses: Sequence[Hypothesis],
        evidence: Evidence,
        budget_usd: float,
        seed_labels: int,
        n_trials: int,
        seed: int = 0,
        defaults: Mapping[str, Any] | None = None,
        annotate_at: int | None = ANNOTATE_AT,
        independent: optuna.samplers.BaseSampler | None = None,
    ) -> None:
        self._hypotheses = tuple(hypotheses)
        self._evidence = evidence
        self._budget_usd = budget_usd
        self._seed_labels = seed_labels
        self._n_trials = n_trials
        self._seed = seed
        self._defaults = dict(defaults or {})
        self._annotate_at = annotate_at
        self._independent = independent or optuna.samplers.TPESampler(seed=seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name == "compute_fraction" and isinstance(param_distribution, FloatDistribution):
            return self.share(study, trial)
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        default = self._defaults.get(param_name)
        if default is not None and len(finished) < FIRST_WITH_DEFAULTS:
            return default
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def share(self, study: optuna.Study, trial: FrozenTrial) -> float:
        """The trial's compute share: the answer first, annotate only at its place, then a
        Thompson draw (seeded by the sampler's seed and the trial's number)."""
        from threadpoolctl import threadpool_limits

        # The driver asks beside trials that train on every core: BLAS threads spinning for
        # a free core would slow both many times over (small matrices need no second one).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._share(study, trial)

    def _share(self, study: optuna.Study, trial: FrozenTrial) -> float:
        others = [  # the trials whose share is set: finished, or in flight
            t
            for t in study.get_trials(deepcopy=False, states=_LIVE)
            if t.number != trial.number and "compute_fraction" in t.params
        ]
        if self._annotate_here(others):
            return 0.0
        observations, costs = self._evidence(study)
        budget = float(trial.params.get("budget_usd", self._budget_usd))
        buys = costs.buys(budget, self._seed_labels)
        post = update(self._hypotheses, observations)
        if not others:
            return answer(post, buys, seed=self._seed).compute_fraction
        # A share measured (or in flight) is not drawn again: a trial at it repeats its
        # seed's score (`--seeds N` measures each point N times on its own).
        taken = [float(t.params["compute_fraction"]) for t in others]
        seed = self._seed * 1_000_003 + trial.number
        return thompson(post, buys, seed=seed, measured=taken, apart=APART)

    def _annotate_here(self, others: Sequence[FrozenTrial]) -> bool:
        if self._annotate_at is None or self._n_trials < 2:
            return False
        if any(t.params.get("compute_fraction") == 0.0 for t in others):
            return False
        return len(others) >= min(self._annotate_at, self._n_trials - 1)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._independent.after_trial(study, trial, state, values)


# --- the evidence of a sweep: its store ---------------------------------------------------


@dataclass
class StoreEvidence:
    """Every finished trial of the task in the MLflow store whose student learned something
    and that was measured with the same recipe (`sweep.decide.evidence`): this sweep's,
    earlier sweeps', grids' and plan pilots' alike. Its prices: the task's cost model
    (`--meter paper`, stand-ins), or under a meter known only once trials ran (estimated,
    measured) that model rescaled to what the distilling trials really spent."""

    tracking_uri: str
    task: str
    recipe: Recipe
    costs: Costs
    rescale: bool = False
    # The store is read again only when the study has finished another trial (a trial's
    # result reaches MLflow before Optuna hears of it).
    _seen: tuple[int, tuple[Sequence[Observation], Costs]] | None = field(
        default=None, repr=False, compare=False
    )

    def __call__(self, study: optuna.Study) -> tuple[Sequence[Observation], Costs]:
        from sweep.tracking.mlflow_store import Tracker

        finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if self._seen is None or self._seen[0] != finished:
            rows = alike(Tracker(self.tracking_uri), self.task, self.recipe)
            costs = self.costs.fitted_to(rows) if self.rescale else self.costs
            self._seen = (finished, (observations(rows), costs))
        return self._seen[1]
