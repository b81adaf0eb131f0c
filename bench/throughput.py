"""Benchmark 4: training throughput against Hugging Face's Trainer, and pseudo-labelling
against one-example-at-a-time generation.

Same model (the MiniLM student, its first 2 layers), same examples (BBC News, 128-token
inputs), same hyper-parameters (AdamW, lr, linear decay to zero, no warm-up, batch size,
epochs, seed), same threads, one process:
  fine-tuning:   our `fit` against `transformers.Trainer` (random batches, its default,
                 and `train_sampling_strategy="group_by_length"`, its answer to padding);
  distillation:  our `distill` against a Trainer whose `compute_loss` is the same KD loss;
  pseudo-labels: our batched `soft_targets` (greedy pseudo-target + top-16 logits) against
                 the same call one example at a time, with the offline T5 teacher.
Throughput is training examples per second; the loss each run ends at (mean cross-entropy
or KD on the training examples) must agree within tolerance. Last line: our fine-tuning
throughput over the stronger Trainer set-up (targets: >= 1.3x, pseudo-labelling >= 3x).

    python bench/throughput.py [--examples 480] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from objectives import models
from objectives.data import load_task_data
from objectives.families import EncoderFamily, Item, Seq2SeqFamily, Soft, kd_loss
from objectives.tasks import get_task
from objectives.train import distill, fit, soft_targets

CPU = torch.device("cpu")
LR, BATCH, SEED, TEMPERATURE = 5e-4, 16, 0, 2.0


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def _mean_loss(loss: Callable[[list[Item]], torch.Tensor], items: list[Item]) -> float:
    with torch.inference_mode():
        parts = [
            float(loss(items[i : i + 64])) * len(items[i : i + 64])
            for i in range(0, len(items), 64)
        ]
    return sum(parts) / len(items)


class _Rows(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, items: list[Item], softs: list[Soft] | None = None) -> None:
        self.items, self.softs = items, softs

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row: dict[str, Any] = {"input_ids": self.items[i].input_ids}
        if self.softs is None:
            row["labels"] = self.items[i].label
        else:
            row["teacher_logits"] = self.softs[i].logits
        return row


def _collate(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor(
            [r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows]
        )
        batch = {"input_ids": ids, "attention_mask": (ids != pad_id).long()}
        if "labels" in rows[0]:
            batch["labels"] = torch.tensor([r["labels"] for r in rows])
        else:
            batch["teacher_logits"] = torch.stack([r["teacher_logits"] for r in rows])
        return batch

    return collate


def _trainer(
    model: Any, dataset: _Rows, pad_id: int, epochs: int, group: bool, out: str, kd: bool
) -> Any:
    from transformers import Trainer, TrainingArguments

    class KDTrainer(Trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            teacher = inputs.pop("teacher_logits")
            logits = model(**inputs).logits
            return kd_loss(logits.float(), teacher, TEMPERATURE)

    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=BATCH,
        num_train_epochs=epochs,
        learning_rate=LR,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.01,  # torch's AdamW default, which our loop uses
        seed=SEED,
        use_cpu=True,
        dataloader_num_workers=0,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if group else "random",
        remove_unused_columns=False,
        length_column_name="length",
    )
    cls = KDTrainer if kd else Trainer
    return cls(model=model, args=args, train_dataset=dataset, data_collator=_collate(pad_id))


def encoder_setup(n_examples: int) -> tuple[EncoderFamily, Any, list[Item], list[Item]]:
    spec = get_task("bbc_news")
    data = load_task_data(spec)
    tokenizer = models.encoder_tokenizer("minilm-l2")
    family = EncoderFamily(spec, tokenizer)
    train = family.encode(data.train[:n_examples], with_targets=True)
    pool = family.encode(data.train[n_examples : 2 * n_examples], with_targets=False)
    torch.manual_seed(SEED)
    model = models.encoder_model("minilm-l2", len(spec.labels), tokenizer.vocab_size)
    return family, model, train, pool


def bench_fine_tuning(
    family: EncoderFamily, init: Any, items: list[Item], epochs: int
) -> dict[str, float]:
    def loss_of(model: Any) -> float:
        return _mean_loss(lambda b: family.loss(model, b, CPU), items)

    out: dict[str, float] = {}
    ours = copy.deepcopy(init)
    seconds, _ = _timed(
        lambda: fit(
            ours, family, items, epochs=epochs, lr=LR, batch_size=BATCH, seed=SEED, device=CPU
        )
    )
    out["ours"], out["ours loss"] = len(items) * epochs / seconds, loss_of(ours)
    for name, group in (("Trainer", False), ("Trainer group_by_length", True)):
        model = copy.deepcopy(init)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = _trainer(model, _Rows(items), family.pad_id, epochs, group, tmp, kd=False)
            seconds, _ = _timed(trainer.train)
        model.eval()
        out[name], out[f"{name} loss"] = len(items) * epochs / seconds, loss_of(model)
    return out


def bench_distillation(
    family: EncoderFamily, init: Any, teacher: Any, pool: list[Item], epochs: int
) -> dict[str, float]:
    softs, _ = soft_targets(teacher, family, pool, batch_size=64, device=CPU, meter=None)

    def loss_of(model: Any) -> float:
        index = {id(item): k for k, item in enumerate(pool)}
        return _mean_loss(
            lambda b: family.distill_loss(
                model, b, [softs[index[id(i)]] for i in b], TEMPERATURE, CPU
            ),
            pool,
        )

    out: dict[str, float] = {}
    ours = copy.deepcopy(init)
    seconds, _ = _timed(
        lambda: distill(
            ours,
            family,
            pool,
            softs,
            epochs=epochs,
            lr=LR,
            batch_size=BATCH,
            temperature=TEMPERATURE,
            seed=SEED,
            device=CPU,
            meter=None,
        )
    )
    out["ours"], out["ours loss"] = len(pool) * epochs / seconds, loss_of(ours)
    model = copy.deepcopy(init)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(model, _Rows(pool, softs), family.pad_id, epochs, True, tmp, kd=True)
        seconds, _ = _timed(trainer.train)
    model.eval()
    out["Trainer group_by_length"], out["Trainer group_by_length loss"] = (
        len(pool) * epochs / seconds,
        loss_of(model),
    )
    return out


def bench_pseudo_labels(n_examples: int) -> dict[str, float]:
    spec = get_task("fever")
    data = load_task_data(spec)
    texts = [spec.prefix + e.source for e in data.train] + [e.target for e in data.train]
    tokenizer = models.seq2seq_tokenizer("t5-offline-teacher", texts)
    family = Seq2SeqFamily(spec, tokenizer)
    items = family.encode(data.train[:n_examples], with_targets=False)
    torch.manual_seed(SEED)
    teacher = models.seq2seq_model(
        "t5-offline-teacher", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id
    )
    teacher.eval()
    max_new = spec.max_target_tokens
    batched_s, batched = _timed(
        lambda: soft_targets(
            teacher, family, items, batch_size=32, device=CPU, meter=None, max_new_tokens=max_new
        )[0]
    )
    single_s, single = _timed(
        lambda: [family.soft_targets(teacher, [item], CPU)[0] for item in items]
    )
    same = sum(a.target_ids == b.target_ids for a, b in zip(batched, single, strict=True))
    return {
        "ours": n_examples / batched_s,
        "one at a time": n_examples / single_s,
        "same pseudo-targets": same / n_examples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=480)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pseudo-examples", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tiny", action="store_true", help="a few examples, to keep it working (CI)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.examples, args.epochs, args.pseudo_examples = 32, 1, 8
    torch.set_num_threads(args.threads)
    family, init, items, pool = encoder_setup(args.examples)
    # Warm up the thread pools and allocator, so that whichever loop runs first pays nothing.
    fit(
        copy.deepcopy(init),
        family,
        items[: 2 * BATCH],
        epochs=1,
        lr=LR,
        batch_size=BATCH,
        seed=SEED,
        device=CPU,
    )
    tuning = bench_fine_tuning(family, init, items, args.epochs)
    teacher = copy.deepcopy(init)
    fit(teacher, family, items, epochs=args.epochs, lr=LR, batch_size=BATCH, seed=SEED, device=CPU)
    distilling = bench_distillation(family, init, teacher, pool, args.epochs)
    pseudo = bench_pseudo_labels(args.pseudo_examples)
    print(
        f"{args.examples} BBC News examples x {args.epochs} epochs, batch {BATCH}, "
        f"{args.threads} threads, MiniLM-L2 student"
    )
    for title, result in (("fine-tuning", tuning), ("distillation", distilling)):
        for name in (k for k in result if not k.endswith("loss")):
            loss = result[f"{name} loss"]
            print(f"  {title:<13} {name:<24} {result[name]:7.1f} examples/s, final loss {loss:.4f}")
    print(
        f"  pseudo-labels ({args.pseudo_examples} FEVER claims, offline T5 teacher): batched "
        f"{pseudo['ours']:.1f}/s, one at a time {pseudo['one at a time']:.1f}/s "
        f"(same pseudo-target for {pseudo['same pseudo-targets']:.0%}); "
        f"ratio {pseudo['ours'] / pseudo['one at a time']:.2f}"
    )
    for title, result in (("fine-tuning", tuning), ("distillation", distilling)):
        losses = [v for k, v in result.items() if k.endswith("loss")]
        if max(losses) - min(losses) > 0.05 + 0.1 * max(losses):
            raise SystemExit(f"{title}: the loops ended at different losses {losses}")
    baseline = max(tuning["Trainer"], tuning["Trainer group_by_length"])
    kd_ratio = distilling["ours"] / distilling["Trainer group_by_length"]
    print(f"  distillation, ours / Trainer: {kd_ratio:.2f}")
    print(f"fine-tuning throughput, ours / best Trainer set-up: {tuning['ours'] / baseline:.2f}")


if __name__ == "__main__":
    main()
