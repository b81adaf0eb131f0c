"""The values a sweep is described by: `SweepConfig`, config files and prices, store paths.
The lowest layer of `sweep`: it imports nothing else of the package."""

from sweep.config.files import PRICE_FIELDS, book_from, price_book, read_config_file, user_tasks
from sweep.config.paths import (
    absolute_uri,
    artifact_root,
    check_writable,
    default_storage,
    default_tracking,
    store_path,
)
from sweep.config.sweep_config import (
    DEFAULT_COMPUTE_ALLOWANCE_USD,
    DEFAULT_PENDING_TIMEOUT_S,
    DEFAULT_ROOT,
    FIXED_ON_RESUME,
    OBJECTIVES,
    SAMPLERS,
    SWEEP_FIELDS,
    SweepConfig,
    absolute_paths,
    default_sweep_name,
)

__all__ = [
    "DEFAULT_COMPUTE_ALLOWANCE_USD",
    "DEFAULT_PENDING_TIMEOUT_S",
    "DEFAULT_ROOT",
    "FIXED_ON_RESUME",
    "OBJECTIVES",
    "PRICE_FIELDS",
    "SAMPLERS",
    "SWEEP_FIELDS",
    "SweepConfig",
    "absolute_paths",
    "absolute_uri",
    "artifact_root",
    "book_from",
    "check_writable",
    "default_storage",
    "default_sweep_name",
    "default_tracking",
    "price_book",
    "read_config_file",
    "store_path",
    "user_tasks",
]
