"""Does this recipe learn here? One small teacher and one annotate-only student, each trained
on the seed labels alone (no meter, no budget), each against the task's trivial baseline on
the dev rows (`objectives.baselines`). `sweep doctor --task T --learn` runs it before a
sweep spends anything on a recipe that learns nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from objectives.baselines import Standing, compare
from objectives.metrics import score
from objectives.train import fit
from objectives.trial_config import TrialConfig
from objectives.trial_setup import prepare_trial


@dataclass(frozen=True)
class Learned:
    """One model trained on the seed labels, against the trivial baseline."""

    role: str  # "teacher" or "student"
    model: str
    epochs: int
    learning_rate: float
    n_labels: int
    metric: str
    score: float
    trivial_score: float
    trivial_predictor: str
    standing: Standing
    seconds: float

    @property
    def learned(self) -> bool:
        return self.standing.learned


def check_learning(cfg: TrialConfig) -> tuple[Learned, Learned]:
    """(the teacher, the annotate-only student), each fitted on the labelled rows of `cfg`
    (its seed labels plus any its budget buys) with the recipe's epochs and rate."""
    trial = prepare_trial(cfg, lambda _: None)
    recipes = (
        ("teacher", trial.teacher_name, cfg.teacher_epochs, cfg.teacher_lr),
        ("student", trial.student_name, cfg.student_epochs, cfg.student_lr),
    )
    out: list[Learned] = []
    for role, name, epochs, learning_rate in recipes:
        started = time.perf_counter()
        model = trial.build(name)
        fit(model, trial.family, trial.labelled, trial.train_settings(epochs, learning_rate))
        predictions = trial.predict(model, trial.dev)
        dev = score(trial.spec, predictions, trial.dev)
        assert dev.stats is not None  # every score keeps its per-example statistics
        versus = compare(trial.spec, dev.name, trial.gold, trial.dev, (predictions, dev.stats))
        out.append(
            Learned(
                role=role,
                model=name,
                epochs=epochs,
                learning_rate=learning_rate,
                n_labels=trial.n_labels_used,
                metric=dev.name,
                score=dev.value,
                trivial_score=versus.trivial_score,
                trivial_predictor=versus.trivial_predictor,
                standing=versus.student,
                seconds=time.perf_counter() - started,
            )
        )
    return out[0], out[1]
