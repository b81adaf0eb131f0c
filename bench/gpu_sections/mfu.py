"""The `mfu` section: teacher fine-tuning (our `fit`) of a T5 built from a config, timed
per variant, as a fraction of the GPU's bf16 dense peak (model FLOPs and the meter's count)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from .device import cuda, device, peak_flops, synchronize, tiny_mode
from .figures import record


def t5_from_config(name: str, vocab_size: int, on: torch.device) -> Any:
    """A T5 of an offline shape (objectives.models), built directly on `on` (fast on a GPU)."""
    from transformers import T5ForConditionalGeneration

    from objectives.models import offline_t5_config

    config = offline_t5_config(name, vocab_size, pad_id=0, eos_id=1)
    config.use_cache = False  # training: no key/value cache (it also made compile recompile)
    torch.manual_seed(0)
    with on:
        return T5ForConditionalGeneration(config)


def model_flops_per_step(model: Any, batch: int, source: int, target: int) -> float:
    """Training FLOPs of one step that the model really does: each parameter's matmul over
    the tokens it sees (encoder: source; decoder and head: target; cross-attention keys and
    values: source), plus attention scores, x3 for forward and backward (PaLM's MFU count)."""
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    per_sequence = 0.0
    for name, p in model.named_parameters():
        if id(p) in embeddings:
            continue
        cross_kv = "EncDecAttention.k." in name or "EncDecAttention.v." in name
        tokens = source if name.startswith("encoder.") or cross_kv else target
        per_sequence += 2.0 * p.numel() * tokens
    cfg = model.config
    inner = cfg.num_heads * cfg.d_kv
    per_sequence += cfg.num_layers * 4.0 * source * source * inner  # encoder self-attention
    per_sequence += cfg.num_decoder_layers * 4.0 * (target * target + target * source) * inner
    return 3.0 * per_sequence * batch


def _fixed_length_items(n: int, source: int, target: int, vocab: int) -> list[Any]:
    from objectives.families import Item

    generator = torch.Generator().manual_seed(0)
    # Ids from 2: 0 is padding, 1 the end; equal lengths, so every batch is B x (S + T).
    ids = torch.randint(2, vocab, (n, source + target), generator=generator).tolist()
    return [Item(row[:source], target_ids=tuple(row[source:])) for row in ids]


def _time_fit(model: Any, items: list[Any], batch: int, epochs: int) -> tuple[float, int]:
    """(seconds, steps) of our `fit` after its first epoch (the warm-up: CUDA kernels
    chosen, optimizer state allocated, anything compiled), synchronised at epoch ends."""
    from objectives.families import Seq2SeqFamily
    from objectives.models import train_bpe_tokenizer
    from objectives.tasks import get_task
    from objectives.train import TrainSettings, fit

    # The items are token ids already: the tokenizer only names padding (0) and the end (1).
    family = Seq2SeqFamily(get_task("nq"), train_bpe_tokenizer(["warm up"] * 4))
    marks: list[float] = []

    def mark(epoch: int) -> None:
        synchronize()
        marks.append(time.perf_counter())

    settings = TrainSettings(
        epochs=epochs, learning_rate=1e-4, batch_size=batch, seed=0, device=device()
    )
    fit(model, family, items, settings, on_epoch=mark)
    steps_per_epoch = -(-len(items) // batch)
    return marks[-1] - marks[0], steps_per_epoch * (epochs - 1)


def _compile_blocks(model: Any) -> None:
    """Compile each T5 block on its own (regional compilation): identical blocks share one
    compiled graph, so compiling costs a few graphs, not 48."""
    for stack in (model.encoder, model.decoder):
        for block in stack.block:
            block.compile()


def cmd_mfu(args: argparse.Namespace) -> None:
    from objectives.meter import step_flops
    from objectives.models import n_parameters

    tiny = tiny_mode(args)
    name = "t5-offline-student" if tiny else args.model
    batch, source, target = (4, 32, 8) if tiny else (args.batch, args.source, args.target)
    steps_per_epoch, epochs = (2, 2) if tiny else (5, 5)
    vocab = 4000 if tiny else 32128  # T5's vocabulary
    peak, source_of_peak = peak_flops()
    variants = ["autocast"] if tiny else args.variants.split(",")
    model = t5_from_config(name, vocab, device())
    n_params = n_parameters(model)
    meter_flops = step_flops("train", n_params, batch * (source + target))
    true_flops = model_flops_per_step(model, batch, source, target)
    print(
        f"{name}: {n_params / 1e6:.1f} M parameters (embeddings excluded), batch {batch} x "
        f"({source} source + {target} target tokens), our `fit` (fused AdamW); peak "
        f"{peak / 1e12:.3g} TFLOP/s ({source_of_peak})\n"
        f"FLOPs per step: meter's 6 x params x tokens {meter_flops:.3g}; model FLOPs "
        f"(per-token parameter use + attention) {true_flops:.3g}: the meter counts "
        f"{meter_flops / true_flops:.2f}x",
        flush=True,
    )
    items = _fixed_length_items(batch * steps_per_epoch, source, target, vocab)
    for variant in variants:
        if variant in ("bf16", "compile"):
            model.to(torch.bfloat16)  # bf16 weights and optimizer state: no fp32 master copy
        if variant == "compile":
            _compile_blocks(model)
        if cuda():
            torch.cuda.reset_peak_memory_stats()
        try:
            seconds, steps = _time_fit(model, items, batch, epochs)
        except torch.cuda.OutOfMemoryError:
            print(f"  {variant}: out of GPU memory at batch {batch}; lower --batch")
            continue
        step_s = seconds / steps
        mfu_meter = meter_flops / step_s / peak
        mfu_model = true_flops / step_s / peak
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda() else "n/a"
        print(
            f"  {variant:<9} {step_s * 1e3:7.1f} ms/step, "
            f"{batch * (source + target) / step_s:9.0f} tokens/s, MFU {mfu_model:6.1%} "
            f"(model FLOPs), {mfu_meter:6.1%} (meter's count); peak memory {memory}",
            flush=True,
        )
        record(
            args.summary,
            "mfu",
            variant=variant,
            model=name,
            mfu_model=mfu_model,
            mfu_meter=mfu_meter,
            ms_per_step=step_s * 1e3,
            tiny=tiny,
        )
