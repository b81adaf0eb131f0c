"""What a stage will cost before it runs: the plans a trial checks its money against.

The teacher's fine-tune is planned on the very batches `fit` will form (replayed from the
seed), and the soft labels on the windows `soft_targets` will pad, so that a stage the
plan affords is one the meter lets finish. Distillation's batches depend on the soft
targets' lengths, unknown before they exist: it is planned at the longest target, with a
margin for padding. The meter stays the hard stop.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from objectives.families import Item
from objectives.meter import ComputeMeter, step_flops
from objectives.train import fit_tokens, gold_batches, padded_tokens, soft_window_tokens
from objectives.trial_config import TrialConfig


def teacher_flops(items: Sequence[Item], n_params: int, cfg: TrialConfig) -> float:
    """The teacher's fine-tune on `items`, as `fit` will batch them."""
    tokens = fit_tokens(items, epochs=cfg.teacher_epochs, batch_size=cfg.batch_size, seed=cfg.seed)
    return step_flops("train", n_params, tokens)


def affordable_pool(
    meter: ComputeMeter,
    items: Sequence[Item],
    cfg: TrialConfig,
    *,
    teacher_params: int,
    student_params: int,
    max_new_tokens: int,
    gold: Sequence[Item] = (),
) -> int:
    """The most of `items` (whole windows; a pool under a batch only whole) whose soft
    labels and distillation the money left covers, with room for the meter's last step.

    Distillation is planned per example at its source plus the longest target, 10 % over
    for padding, at the epochs that pool size gets (`min_distill_steps` included); the
    `gold` batches mixed into its steps (`gold_weight`) exactly, as `distill` draws them."""
    bs, target = cfg.batch_size, max_new_tokens
    epoch_flops = statistics.fmean(
        step_flops("train", student_params, len(i.input_ids) + target) for i in items
    )
    windows = [items[s : s + bs] for s in range(0, len(items), bs)]
    whole = [w for w in windows if len(w) == bs] or windows
    budget = meter.remaining_usd - meter.step_headroom_usd()
    soft_flops = 0.0
    sizes: list[tuple[int, float]] = []  # (n, the soft labels' FLOPs for the first n)
    for window in whole:
        soft_flops += step_flops("infer", teacher_params, soft_window_tokens(window, target))
        sizes.append((len(window) * (len(sizes) + 1), soft_flops))

    def steps(n: int) -> int:
        return cfg.distill_epochs_for(n) * -(-n // bs)

    gold_tokens = [0]  # of the first k steps' gold batches
    if cfg.gold_weight > 0 and gold:
        batches = gold_batches(gold, bs, cfg.seed)
        for _ in range(max(steps(n) for n, _ in sizes)):
            gold_tokens.append(gold_tokens[-1] + padded_tokens(next(batches)))

    def usd(n: int, soft: float) -> float:
        gold_flops = step_flops(
            "train", student_params, gold_tokens[min(steps(n), len(gold_tokens) - 1)]
        )
        return meter.planned_usd(
            soft + 1.1 * cfg.distill_epochs_for(n) * n * epoch_flops + gold_flops
        )

    # Not monotonic in n where the minimum binds (the same steps over fewer examples cost
    # about the same): the largest n within the money, by a scan. Less than a batch is not
    # worth distilling (a handful of examples repeated for the minimum's steps teaches one
    # class): then nothing is, and the student learns from its gold labels.
    return next((n for n, soft in reversed(sizes) if usd(n, soft) <= budget), 0)
