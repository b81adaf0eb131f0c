"""The training loops: reproducible whatever ran before them in the process."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from objectives import models
from objectives.data import load_task_data
from objectives.families import EncoderFamily, Item
from objectives.tasks import get_task
from objectives.train import TrainSettings, distill, fit, soft_targets

CPU = torch.device("cpu")


def _setup() -> tuple[EncoderFamily, Any, list[Item], list[Item]]:
    spec = get_task("bbc_news")
    data = load_task_data(spec)
    tokenizer = models.encoder_tokenizer("bert-offline-student")
    family = EncoderFamily(spec, tokenizer)
    torch.manual_seed(0)
    model: Any = models.encoder_model(
        "bert-offline-student", len(spec.labels), tokenizer.vocab_size
    )
    assert model.config.hidden_dropout_prob > 0  # dropout draws from torch's generator
    labelled = family.encode(data.train[:24], with_targets=True)
    pool = family.encode(data.train[24:48], with_targets=False)
    return family, model, labelled, pool


def _weights(model: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_a_loop_does_not_depend_on_the_random_state_before_it() -> None:
    """A teacher trained in this process (a cache miss) or loaded (a hit) leaves torch's
    generator in different states; the student trained next must come out the same."""
    family, init, labelled, pool = _setup()
    teacher = copy.deepcopy(init)
    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=8, seed=0, device=CPU)
    fit(teacher, family, labelled, settings)
    softs = soft_targets(teacher, family, pool, batch_size=8, device=CPU, meter=None)
    students = []
    for state in (1, 2):
        torch.manual_seed(state)
        torch.rand(1000)  # whatever earlier stages drew
        student = copy.deepcopy(init)
        settings = dataclasses.replace(settings, seed=3)
        fit(student, family, labelled, settings)
        distill(student, family, pool, softs, settings, temperature=2.0, meter=None)
        students.append(_weights(student))
    assert all(torch.equal(a, b) for a, b in zip(*students, strict=True))
    changed = _weights(init)
    assert not all(torch.equal(a, b) for a, b in zip(students[0], changed, strict=True))
