"""What measured landscapes say about a new task's split before and between its pilots.

A landscape is a grid of measured scores over labelled L and distilled U examples (the
paper's FEVER, WLP and NQ grids, the project's BBC News grid: `landscapes/`, sources in its
README). A new task differs from them in what is known in advance (its price per label, its
compute prices, its seed labels, its pool, B), and those are applied exactly: every share f
of B becomes the task's own (L, U). What is not known, how its scores grow with L and U,
is carried over as a set of hypotheses ("particles"): each known landscape, read with L and
U rescaled (the task may need 4 x the labels, or 1/10 of the pool, to get as far) and its
scores mapped by a level and a scale (`alpha + beta * score`) that pilots fit by Bayesian
linear regression. Pilot scores weigh the particles by their marginal likelihood, so the
answer is a posterior expectation over hypotheses, and its interval is predictive (noise
included). With no pilots the weights are equal: the prior's answer, free.

Hand-written: the particle posterior is a few lines of conjugate algebra on 2 x 2 matrices,
batched over particles; no maintained library fits a mixture of transplanted grids.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from objectives.budget import CostModel
from objectives.standins import ReplayTable
from sweep.decide.costs import FRACTIONS, Costs

Array = NDArray[np.float64]
LANDSCAPES = Path(__file__).with_name("landscapes")
LABEL_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)  # the task needs 1/k x the labels to get as far
POOL_SCALES = (0.1, 0.3, 1.0, 3.0)  # ... and 1/k x the distilled examples
PRIOR_LEVEL_SD = 10.0  # alpha ~ N(0, 10^2): flat; a task's level says nothing of its best split
PRIOR_SCALE_SD = 0.5  # beta ~ N(1, 0.5^2): and in how far they move


@dataclass(frozen=True)
class Known:
    """One measured landscape: a name and its grid of scores."""

    name: str
    table: ReplayTable

    def scores(self, n_labelled: Array, n_unlabelled: Array) -> Array:
        """The grid's score at each point, read as a replay of it reads one (bilinear in
        log L and log(1 + U), clamped at the grid's edges)."""
        read = self.table.score
        return np.array(
            [read(int(n), int(u)) for n, u in zip(n_labelled, n_unlabelled, strict=True)]
        )


@functools.cache
def _packaged() -> tuple[Known, ...]:
    """The package's landscapes, read once per process (a plan asks for them at every step)."""
    return tuple(Known(p.stem, ReplayTable.from_csv(p)) for p in sorted(LANDSCAPES.glob("*.csv")))


def shipped(exclude: ReplayTable | None = None) -> tuple[Known, ...]:
    """The landscapes in the package, less any whose scores are `exclude`'s (so that a
    landscape never informs its own prior, whatever its file is called)."""
    return tuple(k for k in _packaged() if exclude is None or k.table.scores != exclude.scores)


@dataclass(frozen=True)
class Setting:
    """What is known about the new task in advance."""

    budget_usd: float
    seed_labels: int
    usd_per_label: float
    cost: CostModel
    pool_cap: int | None = None

    def buys(self, budget_usd: float | None = None) -> tuple[Array, Array]:
        """(labelled, unlabelled) for every share of FRACTIONS at `budget_usd` (B)."""
        c = self.cost
        costs = Costs(
            self.usd_per_label, 0.0, c.a_usd, c.b_usd_per_1k_labelled / 1000,
            c.d_usd_per_1k_unlabelled / 1000, self.pool_cap,
        )  # fmt: skip
        labelled, unlabelled, _ = costs.buys(budget_usd or self.budget_usd, self.seed_labels)
        return labelled, unlabelled


def hypotheses(known: Sequence[Known]) -> list[tuple[Known, float, float]]:
    """Every landscape read at every label and pool scale."""
    return [(k, a, b) for k in known for a in LABEL_SCALES for b in POOL_SCALES]


def raw_scores(known: Sequence[Known], n_labelled: Array, n_unlabelled: Array) -> Array:
    """[hypothesis, point]: each hypothesis's raw score (before its level and scale)."""
    if n_labelled.size == 0:
        return np.zeros((len(hypotheses(known)), 0))
    rows = [k.scores(n_labelled * a, n_unlabelled * b) for k, a, b in hypotheses(known)]
    return np.array(rows, dtype=float)


def names(known: Sequence[Known]) -> tuple[str, ...]:
    return tuple(f"{k.name} L x{a:g} U x{b:g}" for k, a, b in hypotheses(known))


@dataclass(frozen=True)
class Posterior:
    """Each hypothesis's weight and posterior level and scale given the observations."""

    weights: Array  # [hypothesis], sums to 1
    mean: Array  # [hypothesis, 2]: (alpha, beta)
    cov: Array  # [hypothesis, 2, 2]
    noise_sd: float
    n_observations: int = 0

    def predict(self, raw: Array) -> Array:
        """[hypothesis, point] posterior mean scores from raw scores of the same shape."""
        return self.mean[:, :1] + self.mean[:, 1:] * raw

    def expected(self, raw: Array) -> Array:
        """[point]: the posterior expected score."""
        return np.asarray(self.weights @ self.predict(raw), dtype=float)

    def sample(self, raw: Array, n: int, seed: int = 0) -> Array:
        """[n]: draws of what a run at one point (raw: [hypothesis]) would score."""
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(self.weights), size=n, p=self.weights)
        x = np.stack([np.ones_like(raw), raw], axis=1)  # [hypothesis, 2]
        var = np.einsum("hi,hij,hj->h", x, self.cov, x) + self.noise_sd**2
        mean = self.mean[:, 0] + self.mean[:, 1] * raw
        draws = rng.normal(mean[pick], np.sqrt(var[pick]))
        return np.asarray(np.clip(draws, 0.0, 1.0), dtype=float)  # scores are fractions


def posterior(raw_at_obs: Array, observed: Array, noise_sd: float) -> Posterior:
    """Conjugate Bayesian linear regression of the observed scores on each hypothesis's raw
    scores at the observed points (raw_at_obs: [hypothesis, observation])."""
    n_hyp, n_obs = raw_at_obs.shape
    mean0 = np.array([0.0, 1.0])
    prec0 = np.diag([PRIOR_LEVEL_SD**-2, PRIOR_SCALE_SD**-2])
    if n_obs == 0:
        cov = np.broadcast_to(np.linalg.inv(prec0), (n_hyp, 2, 2)).copy()
        return Posterior(np.full(n_hyp, 1 / n_hyp), np.tile(mean0, (n_hyp, 1)), cov, noise_sd)
    x = np.stack([np.ones_like(raw_at_obs), raw_at_obs], axis=2)  # [h, n, 2]
    xtx = np.einsum("hni,hnj->hij", x, x)
    xty = np.einsum("hni,n->hi", x, observed)
    prec = prec0 + xtx / noise_sd**2
    cov = np.linalg.inv(prec)
    mean = np.einsum("hij,hj->hi", cov, prec0 @ mean0 + xty / noise_sd**2)
    # Marginal likelihood: y ~ N(X mean0, X cov0 X^T + noise^2 I), for every hypothesis.
    cov0 = np.linalg.inv(prec0)
    marg = np.einsum("hni,ij,hmj->hnm", x, cov0, x) + noise_sd**2 * np.eye(n_obs)
    resid = observed - x @ mean0
    _, logdet = np.linalg.slogdet(marg)
    quad = np.einsum("hn,hn->h", resid, np.linalg.solve(marg, resid[..., None])[..., 0])
    log_w = -0.5 * (logdet + quad)
    w = np.exp(log_w - log_w.max())
    return Posterior(w / w.sum(), mean, cov, noise_sd, n_obs)


@dataclass(frozen=True)
class Answer:
    """The best share at B under a posterior, with its predictive interval."""

    compute_fraction: float
    fraction_interval: tuple[float, float]  # 90 % of the posterior's best shares
    score: float  # posterior expected score at the share
    score_interval: tuple[float, float]  # 90 % predictive: a full-size run at the share
    expected_regret: float  # posterior expected points lost against each hypothesis's best
    scored: bool  # False: no trial of the task yet, so its level (and score) is unknown
    n_labelled: int
    n_unlabelled: int


def answer(post: Posterior, raw_at_shares: Array, labelled: Array, unlabelled: Array) -> Answer:
    predicted = post.predict(raw_at_shares)  # [hypothesis, share]
    expected = post.weights @ predicted
    best = int(np.argmax(expected))
    regret = expected_regret(post.weights, predicted, best)
    argmaxes = FRACTIONS[np.argmax(predicted, axis=1)]
    order = np.argsort(argmaxes)
    cum = np.cumsum(post.weights[order])
    low = float(argmaxes[order][np.searchsorted(cum, 0.05)])
    high = float(argmaxes[order][min(np.searchsorted(cum, 0.95), len(cum) - 1)])
    draws = post.sample(raw_at_shares[:, best], 4000)
    return Answer(
        compute_fraction=float(FRACTIONS[best]),
        fraction_interval=(low, high),
        score=float(expected[best]),
        score_interval=(float(np.quantile(draws, 0.05)), float(np.quantile(draws, 0.95))),
        expected_regret=regret,
        scored=post.n_observations > 0,
        n_labelled=int(labelled[best]),
        n_unlabelled=int(unlabelled[best]),
    )


SMALLER_BUDGET = 0.75  # B less a quarter: how much a dollar of B is worth is read there


def points_per_usd(
    post: Posterior, raw_at_b: Array, raw_at_less: Array, budget_usd: float
) -> float:
    """What a dollar of B is worth at the answer: the expected best score lost if B were a
    quarter smaller (raw scores at every share of B and of SMALLER_BUDGET x B), per dollar (a
    decision's spending comes out of the same pocket)."""
    lost = post.expected(raw_at_b).max() - post.expected(raw_at_less).max()
    return max(0.0, float(lost)) / ((1 - SMALLER_BUDGET) * budget_usd)


def log_spaced(low: int, high: int, n: int) -> list[int]:
    """Up to n distinct integers from low to high, evenly spaced in log."""
    if high <= low:
        return [max(low, 0)]
    return sorted({round(float(x)) for x in np.geomspace(max(low, 1), high, n)})


def expected_regret(weights: Array, predicted: Array, choice: int) -> float:
    """Points of score lost by answering `choice`, against each hypothesis's own best share,
    weighed by the hypotheses' weights (predicted: [hypothesis, share])."""
    return float(weights @ (predicted.max(axis=1) - predicted[:, choice]))


def expected_gain(
    now: Posterior,
    observations: tuple[Array, Array],
    designs: Sequence[Array],
    raw_at_shares: Array,
) -> Array:
    """[design]: the expected drop in regret (points of score) from observing each design
    (one or more pilots; raw scores [hypothesis, pilot]), one step ahead (the knowledge
    gradient over the hypotheses): each hypothesis in turn is the truth, its predicted
    scores are observed, the answer is redone, and its regret under that truth is weighed by
    the hypothesis's current weight. `now` is the posterior given `observations` (raw scores
    [hypothesis, observation], observed scores)."""
    raw_obs, observed = observations
    predicted = now.predict(raw_at_shares)
    regret_now = expected_regret(now.weights, predicted, int(np.argmax(now.weights @ predicted)))
    truths = np.flatnonzero(now.weights > 1e-4)
    weights = np.zeros_like(now.weights)
    weights[truths] = now.weights[truths] / now.weights[truths].sum()
    gains = []
    for design in designs:
        truth_scores = now.predict(design)  # [hypothesis, pilot]
        raw_next = np.concatenate([raw_obs, design], axis=1)
        choices = np.zeros(len(weights), dtype=int)
        for truth in truths:
            y = np.append(observed, truth_scores[truth])
            nxt = posterior(raw_next, y, now.noise_sd)
            choices[truth] = int(np.argmax(nxt.expected(raw_at_shares)))
        after = float(
            weights @ (predicted.max(axis=1) - predicted[np.arange(len(weights)), choices])
        )
        gains.append(regret_now - after)
    return np.asarray(np.maximum(np.array(gains, dtype=float), 0.0), dtype=float)
