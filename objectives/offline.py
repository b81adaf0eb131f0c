"""Whether the Hugging Face hub may be reached: one reading of HF_HUB_OFFLINE and
HF_DATASETS_OFFLINE, the one huggingface_hub itself uses (1, ON, YES or TRUE, any case)."""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in TRUE_VALUES


def hub_offline() -> bool:
    """No model may be downloaded: HF_HUB_OFFLINE is set."""
    return env_flag("HF_HUB_OFFLINE")


def datasets_offline() -> bool:
    """No data set may be downloaded: either flag is set."""
    return hub_offline() or env_flag("HF_DATASETS_OFFLINE")
