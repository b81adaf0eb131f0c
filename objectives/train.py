"""Training, inference and distillation loops: read top to bottom, metered step by step.

Every step is priced in FLOPs (see `objectives.meter`) on the padded batch it really runs.
When a meter is given, a step it cannot afford is not started and the loop returns with
`finished=False`; when none is given (the student's own training, uncharged as in the
paper) the loop simply runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from objectives.families import Family, Item, Soft
from objectives.meter import BudgetExhausted, ComputeMeter, StepKind, step_flops
from objectives.models import n_parameters

EpochHook = Callable[[int], None]
StepHook = Callable[[int, int], None]  # (steps done, steps planned): progress for people


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How a training loop (`fit`, `distill`) runs: the same five values at every call.

    `epochs` are passes over the loop's examples, `batch_size` is in examples, and `seed`
    fixes the batch order and dropout (see `_train`); the meter and the hooks, which change
    from stage to stage, are passed beside it."""

    epochs: int
    learning_rate: float
    batch_size: int
    seed: int
    device: torch.device


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random | None
) -> list[list[int]]:
    """Batches of similar length (little padding) in a shuffled order.

    Shuffle, cut into windows of 50 batches, sort each window by length, batch it, then
    shuffle the batches. `rng=None` keeps the input order (inference): sort everything.
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def padded_tokens(items: Sequence[Item]) -> int:
    return len(items) * (
        max(len(i.input_ids) for i in items) + max(len(i.target_ids) for i in items)
    )


def fit_tokens(items: Sequence[Item], *, epochs: int, batch_size: int, seed: int) -> int:
    """The padded tokens `fit` will train on: its batches replayed, so a plan is exact."""
    rng = random.Random(seed)
    lengths = [i.n_tokens for i in items]
    return sum(
        padded_tokens([items[i] for i in batch])
        for _ in range(epochs)
        for batch in length_grouped_batches(lengths, batch_size, rng)
    )


def gold_batches(gold: Sequence[Item], batch_size: int, seed: int) -> Iterator[list[Item]]:
    """The gold batches `distill` mixes in, one per step, in order (seeded: a plan replays
    them)."""
    rng, pool = random.Random(seed + 1), list(gold)
    while True:
        yield rng.sample(pool, min(batch_size, len(pool)))


def soft_window_tokens(window: Sequence[Item], max_new_tokens: int) -> int:
    """One window of `soft_targets`: generation plus one teacher-forced pass, about
    (source + 2 x target) tokens each, padded to the window's longest source."""
    return len(window) * (max(len(i.input_ids) for i in window) + 2 * max_new_tokens)


class _Metered:
    """Begin/end a priced step on an optional meter."""

    def __init__(self, meter: ComputeMeter | None, n_params: int) -> None:
        self.meter, self.n_params, self.flops = meter, n_params, 0.0

    def __call__(self, kind: StepKind, n_tokens: int) -> _Step:
        return _Step(self, step_flops(kind, self.n_params, n_tokens))


class _Step:
    def __init__(self, owner: _Metered, flops: float) -> None:
        self.owner, self.flops = owner, flops

    def __enter__(self) -> None:
        if self.owner.meter is not None:
            self.owner.meter.begin(self.flops)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            if self.owner.meter is not None:
                self.owner.meter.end(self.flops)
            self.owner.flops += self.flops


def _optimizer(
    model: Any, learning_rate: float, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    # As in the paper: AdamW, linear decay to zero, no warm-up. The fused kernel (CPU and
    # CUDA since torch 2.4) updates all parameters in one pass: the step of a small student
    # with a large embedding table is dominated by it (bench/throughput.py).
    params = [p for p in model.parameters() if p.requires_grad]
    fusable = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, fused=fusable or None)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, total_steps))
    )
    return optimizer, schedule


BatchStep = Callable[[list[int]], tuple[int, Callable[[], torch.Tensor]]]


def _train(
    model: Any,
    lengths: Sequence[int],
    step: BatchStep,
    settings: TrainSettings,
    *,
    meter: ComputeMeter | None,
    on_epoch: EpochHook | None,
    on_step: StepHook | None = None,
) -> bool:
    """The loop both stages share: length-grouped batches, one metered AdamW step each.

    `step(batch_ids)` returns the batch's padded token count (to price the step before it
    runs) and a function computing its loss.
    """
    epochs, batch_size = settings.epochs, settings.batch_size
    rng = random.Random(settings.seed)
    # Dropout draws from torch's global generator: seed it here, so that a loop's result does
    # not depend on the stages before it (a teacher trained here or loaded from the cache).
    torch.manual_seed(settings.seed)
    steps_per_epoch = -(-len(lengths) // batch_size)
    optimizer, schedule = _optimizer(model, settings.learning_rate, epochs * steps_per_epoch)
    metered = _Metered(meter, n_parameters(model))
    model.train()
    steps = 0
    try:
        for epoch in range(epochs):
            for batch_ids in length_grouped_batches(lengths, batch_size, rng):
                n_tokens, loss_of = step(batch_ids)
                with metered("train", n_tokens):
                    loss_of().backward()
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                steps += 1
                if on_step is not None:
                    on_step(steps, epochs * steps_per_epoch)
            if on_epoch is not None:
                on_epoch(epoch)
    except BudgetExhausted:
        return False  # the meter ran out: the loop did not finish
    finally:
        model.eval()
    return True


def fit(
    model: Any,
    family: Family,
    items: Sequence[Item],
    settings: TrainSettings,
    *,
    meter: ComputeMeter | None = None,
    on_epoch: EpochHook | None = None,
    on_step: StepHook | None = None,
) -> bool:
    """Cross-entropy on gold targets for `settings.epochs` passes, unless the meter runs out."""
    device = settings.device

    def step(batch_ids: list[int]) -> tuple[int, Callable[[], torch.Tensor]]:
        batch = [items[i] for i in batch_ids]
        return padded_tokens(batch), lambda: family.loss(model, batch, device)

    lengths = [i.n_tokens for i in items]
    return _train(model, lengths, step, settings, meter=meter, on_epoch=on_epoch, on_step=on_step)


def distill(
    student: Any,
    family: Family,
    items: Sequence[Item],
    softs: Sequence[Soft],
    settings: TrainSettings,
    *,
    temperature: float,
    meter: ComputeMeter | None,
    gold: Sequence[Item] = (),
    gold_weight: float = 0.0,
    on_epoch: EpochHook | None = None,
    on_step: StepHook | None = None,
) -> bool:
    """Train the student on the teacher's soft targets, optionally mixed with gold CE.

    loss = (1 - gold_weight) * KD(unlabelled batch) + gold_weight * CE(a gold batch).
    """
    device = settings.device
    golds = (
        gold_batches(gold, settings.batch_size, settings.seed) if gold_weight > 0 and gold else None
    )

    def step(batch_ids: list[int]) -> tuple[int, Callable[[], torch.Tensor]]:
        batch = [items[i] for i in batch_ids]
        batch_softs = [softs[i] for i in batch_ids]
        gold_batch = next(golds) if golds is not None else []
        n_tokens = len(batch) * (
            max(len(i.input_ids) for i in batch) + max(len(s.target_ids) for s in batch_softs)
        ) + (padded_tokens(gold_batch) if gold_batch else 0)

        def loss() -> torch.Tensor:
            kd = family.distill_loss(student, batch, batch_softs, temperature, device)
            if not gold_batch:
                return kd
            return (1 - gold_weight) * kd + gold_weight * family.loss(student, gold_batch, device)

        return n_tokens, loss

    lengths = [i.n_tokens + len(s.target_ids) for i, s in zip(items, softs, strict=True)]
    return _train(student, lengths, step, settings, meter=meter, on_epoch=on_epoch, on_step=on_step)


def predict(
    model: Any,
    family: Family,
    items: Sequence[Item],
    *,
    batch_size: int,
    device: torch.device,
) -> list[str]:
    """Predictions in input order, computed in length-sorted batches (uncharged)."""
    out: list[str] = [""] * len(items)
    model.eval()
    for batch_ids in length_grouped_batches([i.n_tokens for i in items], batch_size, None):
        for index, text in zip(
            batch_ids, family.predict(model, [items[i] for i in batch_ids], device), strict=True
        ):
            out[index] = text
    return out


def soft_targets(
    teacher: Any,
    family: Family,
    items: Sequence[Item],
    *,
    batch_size: int,
    device: torch.device,
    meter: ComputeMeter | None,
    max_new_tokens: int = 0,
) -> list[Soft]:
    """The teacher's soft targets for every item, in input order, charged to the meter.

    Batches are fixed-size windows of the input in its order, so the soft
    target of an item does not depend on how many items follow it (a cached prefix and a
    fresh computation agree exactly). Raises BudgetExhausted if the meter runs out.
    """
    metered = _Metered(meter, n_parameters(teacher))
    out: list[Soft | None] = [None] * len(items)
    teacher.eval()
    for start in range(0, len(items), batch_size):
        window = list(range(start, min(start + batch_size, len(items))))
        batch = [items[i] for i in window]
        with metered("infer", soft_window_tokens(batch, max_new_tokens)):
            softs = family.soft_targets(teacher, batch, device)
        for index, soft in zip(window, softs, strict=True):
            out[index] = soft
    return [s for s in out if s is not None]
