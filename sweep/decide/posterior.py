"""One posterior over a task's landscape, the source of every answer: `sweep best`'s share,
`sweep frontier`'s budgets, `sweep plan`'s answer and pilots, and the sweep's sampler.

The model, for each hypothesis h (a known landscape read at a label and a pool scale,
`sweep.decide.prior`) and each point x = (L labels, U distilled examples):

    score(x) = alpha + beta * raw_h(x) + r(x)       the task's level, scale, and misfit
    alpha ~ N(0, 10^2)   a task's level says nothing of its best split
    beta  ~ N(1, 0.5^2)  how far its scores move compared with the landscape's
    r ~ GP(0, (s^2 + e^2 far_h(x) far_h(x')) rho(x, x'))
    y_i = score(x_i) + eps_i,   eps_i ~ N(0, sd_i^2)   a trial's own noise (its interval)

with rho a squared-exponential correlation in (log L, log(1 + U)) and far_h(x) how far x is
read beyond h's measured grid. The misfit r is what keeps evidence honest: no hypothesis is
the truth (the best, its level and scale fitted, still misses a grid by 2-5 points), so no
hypothesis is trusted beyond it, and a reading beyond a grid's range is trusted less still.
s, e and the correlation lengths are fitted leave-one-grid-out on the shipped landscapes
(`sweep.decide.misfit`). alpha, beta and r integrate out: each hypothesis is a Gaussian
process with mean raw_h, and its weight is its marginal likelihood of the observations.

Hand-written: a mixture of Gaussian processes whose mean functions are other tasks' grids,
batched over 60-80 hypotheses with each trial's own noise; scikit-learn's GP fits one process
at a time (80 fits per update) and BoTorch would bring torch into `sweep best`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from sweep.decide.costs import Buys
from sweep.decide.prior import Array, Hypothesis, readings
from sweep.tracking.results import TrialRow, learned_rows

LEVEL_SD = 10.0  # alpha's prior: flat over any metric in [0, 1]
SCALE_SD = 0.5  # beta's prior around 1
NOISE_SD = 0.02  # a trial's score noise when it logged no interval
NOISE_FLOOR = 0.003  # no score is known better than this (a stand-in may log none)
DRAWS = 2000  # landscapes drawn to read an answer's regret and range
RANGE = (0.05, 0.95)  # the share range: 90 % of the drawn landscapes' best shares
NEAR = 1e-3  # a hypothesis weighing less than this is left out of the draws


@dataclass(frozen=True)
class Misfit:
    """The discrepancy term: how far a hypothesis misses a landscape (sd, in score) and how
    far that misfit reaches (correlation lengths in log L and log(1 + U)), plus the extra
    misfit per log unit read beyond a grid's measured range; and how far a task's label and
    pool scales stray from a landscape's (the SD of their logs: the hypotheses' prior)."""

    sd: float
    length_labels: float
    length_pool: float
    beyond_sd: float
    scale_sd: float = math.inf


# Fitted by `python -m sweep.decide.misfit` leave-one-grid-out on the shipped landscapes:
# over 38 answers there it prints an expected regret of 0.33 points and realizes 0.31, and
# its share range holds the best share in 37 of them at a mean width of 0.41 (no prior on
# the scales: `scale_sd` infinite; tests/sweep_tests/test_posterior.py checks it still
# calibrates).
MISFIT = Misfit(sd=0.0075, length_labels=8.0, length_pool=4.0, beyond_sd=0.0)


@dataclass(frozen=True)
class Observation:
    """A finished trial as evidence: the labels and distilled examples its student saw, its
    dev score and that score's noise (SD)."""

    n_labelled: float
    n_unlabelled: float
    score: float
    sd: float = NOISE_SD


def noise_sd(low: float | None, high: float | None) -> float:
    """A score's SD from its 90 % interval (NOISE_SD without one), never below the floor."""
    if low is None or high is None or not math.isfinite(high - low):
        return NOISE_SD
    return max(NOISE_FLOOR, (high - low) / (2 * 1.6449))


def observations(rows: Sequence[TrialRow]) -> list[Observation]:
    """The trials that are evidence: finished, with labels, and whose student learned
    something (a constant predictor's score is the data set's floor, not a point of the
    task's landscape); each weighed by its own logged noise."""
    return [
        Observation(r.n_labels_used, r.n_unlabelled, r.score, noise_sd(r.score_low, r.score_high))
        for r in learned_rows(rows)
        if r.n_labels_used > 0
    ]


def _z(labelled: Array, unlabelled: Array, misfit: Misfit) -> Array:
    return np.stack(
        [
            np.log(np.maximum(labelled, 1.0)) / misfit.length_labels,
            np.log1p(np.maximum(unlabelled, 0.0)) / misfit.length_pool,
        ],
        axis=1,
    )


def _kernel(a: tuple[Array, Array, Array], b: tuple[Array, Array, Array], misfit: Misfit) -> Array:
    """[hypothesis, A, B]: the prior covariance of scores at points A and B. Each side is
    (raw [H, n], far [H, n], z [n, 2])."""
    raw_a, far_a, z_a = a
    raw_b, far_b, z_b = b
    rho = np.exp(-0.5 * cdist(z_a, z_b, "sqeuclidean"))
    misfit_var = misfit.sd**2 + misfit.beyond_sd**2 * far_a[:, :, None] * far_b[:, None, :]
    level_scale = LEVEL_SD**2 + SCALE_SD**2 * raw_a[:, :, None] * raw_b[:, None, :]
    return np.asarray(level_scale + rho[None] * misfit_var, dtype=float)


@dataclass(frozen=True)
class Posterior:
    """The hypotheses' weights and what each says given the observations."""

    hypotheses: tuple[Hypothesis, ...]
    observations: tuple[Observation, ...]
    misfit: Misfit
    weights: Array  # [hypothesis], sums to 1
    _obs: tuple[Array, Array, Array]  # raw, far, z at the observations
    _cholesky: Array  # [hypothesis, n, n] of the observations' covariance, noise included
    _residual: Array  # [hypothesis, n]: covariance^-1 (y - raw)

    @property
    def scored(self) -> bool:
        """Whether the task's level is known (a trial of it has been observed)."""
        return bool(self.observations)

    def predict(self, labelled: Array, unlabelled: Array) -> tuple[Array, Array, Array]:
        """Each hypothesis's posterior mean [H, P] and covariance [H, P, P] of the scores at
        the points, and how far beyond its grid each is read [H, P]."""
        raw, far = readings(self.hypotheses, labelled, unlabelled)
        at = (raw, far, _z(labelled, unlabelled, self.misfit))
        prior_cov = _kernel(at, at, self.misfit)
        if not self.observations:
            return raw, prior_cov, far
        cross = _kernel(self._obs, at, self.misfit)  # [H, n, P]
        mean = raw + np.einsum("hnp,hn->hp", cross, self._residual)
        solved = np.linalg.solve(self._cholesky, cross)  # L^-1 K_xp
        cov = prior_cov - np.einsum("hnp,hnq->hpq", solved, solved)
        return mean, cov, far

    def expected(self, labelled: Array, unlabelled: Array) -> Array:
        """[P]: the posterior expected score at the points (the mean alone, cheaply)."""
        raw, far = readings(self.hypotheses, labelled, unlabelled)
        if not self.observations:
            return np.asarray(self.weights @ raw, dtype=float)
        at = (raw, far, _z(labelled, unlabelled, self.misfit))
        cross = _kernel(self._obs, at, self.misfit)
        mean = raw + np.einsum("hnp,hn->hp", cross, self._residual)
        return np.asarray(self.weights @ mean, dtype=float)

    def draws(self, labelled: Array, unlabelled: Array, n: int, seed: int = 0) -> Array:
        """[n, P]: landscapes drawn from the posterior at the points (a hypothesis by its
        weight, then its scores jointly), noise-free."""
        rng = np.random.default_rng(seed)
        kept = np.flatnonzero(self.weights >= NEAR)
        p = self.weights[kept] / self.weights[kept].sum()
        picks = kept[rng.choice(len(kept), size=n, p=p)]
        mean, cov, _ = self.predict(labelled, unlabelled)
        used = np.unique(picks)
        # One batched decomposition (a loop of single ones is 30x slower on a busy machine:
        # OpenBLAS threads wait on each other).
        values, vectors = np.linalg.eigh(cov[used])
        roots = vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
        out = np.empty((n, labelled.size))
        for k, h in enumerate(used):
            rows = np.flatnonzero(picks == h)
            out[rows] = mean[h] + rng.standard_normal((rows.size, labelled.size)) @ roots[k].T
        return out

    def deciding(self, region: Buys) -> Posterior:
        """This posterior for one decision: each hypothesis weighed also by how much of what
        the shares of B buy its grid measured (`coverage`)."""
        w = self.weights * coverage(self.hypotheses, region)
        if not w.any():
            return self
        return dataclasses.replace(self, weights=w / w.sum())

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(self.weights)[::-1][:k]
        return [(self.hypotheses[i].name, float(self.weights[i])) for i in order]


def coverage(hypotheses: Sequence[Hypothesis], region: Buys) -> Array:
    """[hypothesis]: its prior weight for a decision, the share of the decision's points
    (what every share of B buys) its grid measured. A hypothesis is read where its grid was
    measured: one that measured none of them says nothing of this decision. Where no grid
    measured any point, every hypothesis alike (the answer then says so)."""
    _, far = readings(hypotheses, region.labelled, region.unlabelled)
    inside = np.mean(far <= 1e-9, axis=1)
    return inside if inside.any() else np.ones(len(hypotheses))


def scale_prior(hypotheses: Sequence[Hypothesis], misfit: Misfit) -> Array:
    """[hypothesis]: the prior weight of its label and pool scales (log-normal around 1)."""
    logs = np.array([[math.log(h.label_scale), math.log(h.pool_scale)] for h in hypotheses])
    w = np.exp(-0.5 * (logs**2).sum(axis=1) / misfit.scale_sd**2)
    return np.asarray(w / w.sum(), dtype=float)


def update(
    hypotheses: Sequence[Hypothesis],
    observations: Sequence[Observation] = (),
    misfit: Misfit = MISFIT,
) -> Posterior:
    """The posterior given the observations (none: the prior)."""
    hyps, obs = tuple(hypotheses), tuple(observations)
    labelled = np.array([o.n_labelled for o in obs], dtype=float)
    unlabelled = np.array([o.n_unlabelled for o in obs], dtype=float)
    raw, far = readings(hyps, labelled, unlabelled)
    at = (raw, far, _z(labelled, unlabelled, misfit))
    weight = scale_prior(hyps, misfit)
    if not obs:
        empty = np.zeros((len(hyps), 0, 0))
        return Posterior(hyps, obs, misfit, weight, at, empty, raw)
    y = np.array([o.score for o in obs])
    noise = np.array([max(o.sd, NOISE_FLOOR) for o in obs]) ** 2
    cov = _kernel(at, at, misfit) + np.diag(noise)[None]
    chol = np.asarray(np.linalg.cholesky(cov), dtype=float)
    centred = y[None, :] - raw
    white = np.linalg.solve(chol, centred[..., None])[..., 0]  # L^-1 (y - raw)
    residual = np.linalg.solve(np.swapaxes(chol, 1, 2), white[..., None])[..., 0]
    log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_evidence = -0.5 * ((white**2).sum(axis=1) + log_det + len(obs) * math.log(2 * math.pi))
    w = weight * np.exp(log_evidence - log_evidence.max())
    return Posterior(hyps, obs, misfit, w / w.sum(), at, chol, residual)


# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The best share of B under a posterior, what it buys and spends, and how sure it is."""

    budget_usd: float
    compute_fraction: float
    fraction_interval: tuple[float, float]  # 90 % of the drawn landscapes' best shares
    score: float  # posterior expected score at the share (meaningful only when scored)
    score_interval: tuple[float, float]  # 90 % predictive: one full-size run at the share
    expected_regret: float  # expected points lost against each drawn landscape's best
    scored: bool  # False: no trial of the task yet, so its level (and score) is unknown
    n_labelled: int
    n_unlabelled: int
    spent_usd: float
    spends_budget: bool  # False: no share can spend B (the task's data hold less)
    beyond: bool  # its (L, U) lies outside every hypothesis's measured range


def eligible(buys: Buys) -> Array:
    """Indices of the shares an answer may take: those that spend B (when none does, the
    one that leaves least unspent)."""
    spends = np.flatnonzero(buys.spends)
    if spends.size:
        return np.asarray(spends, dtype=float)
    return np.array([float(np.argmax(buys.spent_usd))])


def answer(post: Posterior, buys: Buys, draws: int = DRAWS, seed: int = 0) -> Answer:
    """The share with the best expected score among those that spend B, with the regret
    and share range read off `draws` landscapes drawn from the posterior (for this
    decision: `Posterior.deciding`)."""
    post = post.deciding(buys)
    ok = eligible(buys).astype(int)
    mean, _, far = post.predict(buys.labelled, buys.unlabelled)
    expected = post.weights @ mean
    best = int(ok[np.argmax(expected[ok])])
    curves = post.draws(buys.labelled, buys.unlabelled, draws, seed)
    on = curves[:, ok]
    bests = buys.fractions[ok][np.argmax(on, axis=1)]
    share = float(buys.fractions[best])
    low, high = (float(q) for q in np.quantile(bests, RANGE))
    noise = np.sqrt(np.mean([o.sd**2 for o in post.observations])) if post.scored else NOISE_SD
    runs = curves[:, best] + np.random.default_rng(seed + 1).normal(0.0, noise, draws)
    n_labelled, n_unlabelled, spent = buys.at(best)
    heavy = post.weights >= NEAR
    return Answer(
        budget_usd=buys.budget_usd,
        compute_fraction=share,
        fraction_interval=(min(low, share), max(high, share)),
        score=float(expected[best]),
        score_interval=(float(np.quantile(runs, 0.05)), float(np.quantile(runs, 0.95))),
        expected_regret=float(np.mean(on.max(axis=1) - curves[:, best])),
        scored=post.scored,
        n_labelled=n_labelled,
        n_unlabelled=n_unlabelled,
        spent_usd=spent,
        spends_budget=bool(buys.spends[best]),
        beyond=bool(np.all(far[heavy, best] > 0.05)),
    )


def thompson(
    post: Posterior, buys: Buys, seed: int, measured: Sequence[float] = (), apart: float = 0.0
) -> float:
    """A share drawn where the posterior says the best share may be: the best of one
    landscape drawn from it (Thompson sampling), among the shares that spend B, lie at least
    `apart` from every share `measured` and buy another (L, U) than each (a trial repeated
    with its seed repeats its score: it would tell nothing), unless none does."""
    ok = eligible(buys).astype(int)
    near = [int(np.argmin(abs(buys.fractions - f))) for f in measured]
    seen = {(buys.labelled[j], buys.unlabelled[j]) for j in near}
    new = [
        i
        for i in ok
        if (buys.labelled[i], buys.unlabelled[i]) not in seen
        and all(abs(buys.fractions[i] - f) >= apart for f in measured)
    ]
    ok = np.asarray(new, dtype=int) if new else ok
    curve = post.deciding(buys).draws(buys.labelled, buys.unlabelled, 1, seed)[0]
    return float(buys.fractions[ok[np.argmax(curve[ok])]])
