"""What the device is: CUDA or not, its bf16 dense peak, the meter's hardware profile
closest to it, whether a section runs tiny; and the `env` section, which reports all that."""

from __future__ import annotations

import argparse
import os

import torch

from .figures import record

# Dense bf16 peaks (no sparsity) from the vendors' data sheets, most specific name first.
# GPU_PEAK_TFLOPS overrides them for a card that is not listed.
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 836e12),
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
)
HARDWARE_FOR_NAME = (("H100", "h100"), ("H200", "h100"), ("A100", "a100"))


def cuda() -> bool:
    return torch.cuda.is_available()


def device() -> torch.device:
    return torch.device("cuda" if cuda() else "cpu")


def synchronize() -> None:
    if cuda():
        torch.cuda.synchronize()


def tiny_mode(args: argparse.Namespace) -> bool:
    """Tiny when asked, and always without CUDA (said once per section); tiny runs use one
    thread, as CI machines are shared and more threads than free cores only slow them."""
    if not cuda():
        print("no CUDA: tiny CPU run (the GPU-sized work is skipped)")
    tiny = bool(args.tiny) or not cuda()
    if tiny:
        torch.set_num_threads(1)
    return tiny


def peak_flops() -> tuple[float, str]:
    """(bf16 dense peak FLOP/s of this device, where the figure comes from)."""
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"]) * 1e12, "GPU_PEAK_TFLOPS"
    if not cuda():
        from objectives.meter import get_profile

        return get_profile("cpu").peak_flops, "the `cpu` hardware profile (no GPU)"
    name = torch.cuda.get_device_name()
    for fragment, flops in BF16_PEAK_FLOPS:
        if fragment in name:
            return flops, f"data sheet for {fragment}"
    return 989e12, f"unknown card {name!r}: H100 SXM's figure assumed"


def hardware_profile() -> str:
    """The meter's hardware profile closest to this device."""
    if not cuda():
        return "cpu"
    name = torch.cuda.get_device_name()
    return next((p for fragment, p in HARDWARE_FOR_NAME if fragment in name), "h100")


def cmd_env(args: argparse.Namespace) -> None:
    import platform

    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions["transformers"] = transformers.__version__
    try:
        import accelerate

        versions["accelerate"] = accelerate.__version__
    except ImportError:
        versions["accelerate"] = "absent"
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    name = torch.cuda.get_device_name() if cuda() else "none (CPU only)"
    if cuda():
        props = torch.cuda.get_device_properties(0)
        print(
            f"GPU: {name} x{torch.cuda.device_count()}, {props.total_memory / 2**30:.0f} GiB, "
            f"compute capability {props.major}.{props.minor}, CUDA {torch.version.cuda}, "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'NO'}"
        )
    else:
        print("GPU: none (CPU only): every section runs its tiny CPU mode")
    peak, source = peak_flops()
    print(f"bf16 dense peak used for MFU: {peak / 1e12:.3g} TFLOP/s ({source})")
    print(f"meter hardware profile: {hardware_profile()}")
    record(args.summary, "env", gpu=name, peak_tflops=peak / 1e12, **versions)
