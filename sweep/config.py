"""Config files and price overrides: the same fields as the command line, in TOML."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objectives.budget import PriceBook, parse_price_overrides
from objectives.tasks import BUILTIN_TASKS, TaskSpec, get_task, load_task_file
from objectives.trial_config import TrialConfig

PRICE_FIELDS = ("usd_per_label", "usd_per_device_hour", "charge_student_training")


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """Read a TOML config; keys use the CLI's long option names with '_' for '-'."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {str(path)!r} does not exist; pass a TOML file.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {str(path)!r} is not valid TOML: {exc}.") from None


def price_book(
    file_prices: Mapping[str, Any] | None = None,
    cli_prices: list[str] | None = None,
    usd_per_device_hour: float | None = None,
    charge_student_training: bool | None = None,
    tasks: Mapping[str, TaskSpec] | None = None,
) -> PriceBook:
    """The paper's price book, with each task's own price, then the config file's
    `[prices]` table, then the command line on top."""
    specs = {**BUILTIN_TASKS, **(tasks or {})}
    base = PriceBook().with_overrides(
        usd_per_label={name: spec.usd_per_label for name, spec in specs.items()}
    )
    file_prices = dict(file_prices or {})
    unknown = sorted(set(file_prices) - set(PRICE_FIELDS))
    if unknown:
        raise ValueError(
            f"Unknown key {unknown[0]!r} in [prices]; valid keys: {', '.join(PRICE_FIELDS)}."
        )
    labels = file_prices.get("usd_per_label", {})
    if not isinstance(labels, dict):
        raise ValueError(f"[prices].usd_per_label must be a table of TASK = USD, got {labels!r}.")
    dollars = {f"usd_per_label.{task}": usd for task, usd in labels.items()}
    if "usd_per_device_hour" in file_prices:
        dollars["usd_per_device_hour"] = file_prices["usd_per_device_hour"]
    for key, value in dollars.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"[prices].{key} must be a number of dollars, got {value!r}.")
    flag = file_prices.get("charge_student_training")
    if flag is not None and not isinstance(flag, bool):
        raise ValueError(f"[prices].charge_student_training must be true or false, got {flag!r}.")
    book = base.with_overrides(
        usd_per_label={str(k): float(v) for k, v in labels.items()},
        usd_per_device_hour=file_prices.get("usd_per_device_hour"),
        charge_student_training=file_prices.get("charge_student_training"),
    )
    return book.with_overrides(
        usd_per_label=parse_price_overrides(cli_prices or []),
        usd_per_device_hour=usd_per_device_hour,
        charge_student_training=charge_student_training,
    )


def book_from(
    args: Any, file_cfg: Mapping[str, Any], tasks: Mapping[str, TaskSpec] | None = None
) -> PriceBook:
    """The price book of a command: a --config file's prices (its `[prices]` table, or the
    same keys at its top level like every other option), then the command line's."""
    top = {
        k: file_cfg[k] for k in ("usd_per_device_hour", "charge_student_training") if k in file_cfg
    }
    file_prices = {**top, **(file_cfg.get("prices") or {})}
    listed = file_cfg.get("price") or []
    if not isinstance(listed, list):
        raise ValueError(f'--config\'s price must be a list of "TASK=USD", got {listed!r}.')
    return price_book(
        file_prices,
        [*map(str, listed), *(getattr(args, "price", None) or [])],
        getattr(args, "usd_per_device_hour", None),
        getattr(args, "charge_student_training", None),
        tasks,
    )


def user_tasks(task_files: list[str] | None) -> dict[str, TaskSpec]:
    specs = [load_task_file(f) for f in task_files or []]
    return {spec.name: spec for spec in specs}


# CLI option -> config field, where the two names differ; every other option is named after
# its field (`--teacher-lr` is `teacher_lr`). What an option sets is derived from the config
# dataclasses' fields, so a new field needs only its parser line (tests check both ways).
OPTION_TO_FIELD = {
    "budget": "budget_usd",
    "seed_labels": "n_seed_labels",
    "trials": "n_trials",
    "compute_allowance": "compute_allowance_usd",
    "max_spend": "max_spend_usd",
}
FIELD_TO_OPTION = {v: k for k, v in OPTION_TO_FIELD.items()}
TRIAL_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialConfig))
# Trial fields the price book and the task file resolve, not copied from their options.
_RESOLVED_TRIAL_FIELDS = frozenset({*PRICE_FIELDS, "task_file"})


def field_of(option: str) -> str:
    """The config field an option (argparse dest or config-file key) sets."""
    return OPTION_TO_FIELD.get(option, option)


def option_of(field_name: str) -> str:
    return FIELD_TO_OPTION.get(field_name, field_name)


def trial_options(args: Any) -> tuple[str, ...]:
    """The options of a parsed command that set TrialConfig fields."""
    return tuple(
        name
        for name in vars(args)
        if field_of(name) in TRIAL_FIELDS and field_of(name) not in _RESOLVED_TRIAL_FIELDS
    )


def sweep_options(args: Any) -> tuple[str, ...]:
    """The options of a parsed command that set SweepConfig fields of their own (the task,
    budget and seed labels are trial fields too and travel with them)."""
    return tuple(
        name
        for name in vars(args)
        if field_of(name) in SWEEP_FIELDS and field_of(name) not in TRIAL_FIELDS
    )


def merged(args: Any, file_cfg: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Command-line values over config-file values; options left unset are None."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            value = file_cfg.get(name)
        if value is not None:
            out[name] = value
    return out


def check_file_keys(args: Any, file_cfg: Mapping[str, Any]) -> None:
    """A --config key that no option of this command has is a typo: name it."""
    valid = {*vars(args), "prices", "task_file"}
    unknown = sorted(set(file_cfg) - valid)
    if unknown:
        raise ValueError(
            f"Unknown key {unknown[0]!r} in --config; valid keys: {', '.join(sorted(valid))}."
        )


def trial_fields(
    args: Any, file_cfg: Mapping[str, Any], book: PriceBook, extra: Mapping[str, TaskSpec]
) -> dict[str, Any]:
    """TrialConfig fields from the command line and a config file, prices resolved."""
    values = merged(args, file_cfg, trial_options(args))
    fields = {field_of(k): v for k, v in values.items()}
    task_files = getattr(args, "task_file", None) or file_cfg.get("task_file") or []
    if isinstance(task_files, str):
        task_files = [task_files]
    if task_files:
        if len(task_files) > 1:
            raise ValueError("A trial or sweep takes one --task-file; got several.")
        fields["task_file"] = str(Path(task_files[0]).resolve())
    if "task" not in fields and len(extra) == 1:
        fields["task"] = next(iter(extra))  # the task file names its task
    if "task" in fields:
        get_task(fields["task"], extra)  # an unknown name lists the valid ones first
        fields["usd_per_label"] = book.label_price(fields["task"])
    fields["usd_per_device_hour"] = book.usd_per_device_hour
    fields["charge_student_training"] = book.charge_student_training
    return fields


SAMPLERS = ("tpe", "gp", "random", "grid")
OBJECTIVES = ("real", "synthetic", "replay")
DEFAULT_ROOT = "runs"
DEFAULT_COMPUTE_ALLOWANCE_USD = 1000.0  # a grid point's compute allowance unless one is given


# Field metadata: what the sweep measures, which a resume may not change.
FIXED: Mapping[str, bool] = {"fixed_on_resume": True}


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a task at one budget, searched over the compute fraction (or, in grid
    mode, a labelled x unlabelled grid whose points each buy their labels plus compute up to
    `compute_allowance_usd`; there is no sweep-wide budget and `budget_usd` is 0).

    `trial` holds the TrialConfig fields shared by every trial (all but the sampled ones).
    Stores default to files under `root`: MLflow and Optuna in SQLite, Ray's results and
    the stage cache in folders.
    """

    name: str
    task: str = field(metadata=FIXED)
    budget_usd: float = field(metadata=FIXED)
    n_seed_labels: int = field(metadata=FIXED)
    n_trials: int
    trial: Mapping[str, Any] = field(default_factory=dict, metadata=FIXED)
    preset: str = field(default="paper", metadata=FIXED)
    seeds: int = field(default=1, metadata=FIXED)
    sampler: str = "tpe"
    space: str | None = None  # None: the sampler's natural space
    sampler_seed: int = 0
    concurrency: int = 1
    retries: int = 0
    asha: bool = False
    objective: str = field(default="real", metadata=FIXED)
    replay_table: str | None = None
    standin_work_seconds: float = 0.0  # sleep per stand-in trial, to emulate training time
    address: str | None = None
    root: str = DEFAULT_ROOT
    tracking_uri: str | None = None
    storage: str | None = None
    cpus_per_trial: float = 1.0
    teacher_gpus: float = 0.0
    student_gpus: float = 0.0
    teacher_node_resource: str | None = None
    student_node_resource: str | None = None
    # Grid mode (`sweep grid`, the paper's grid): one trial per labelled x unlabelled pair,
    # all labels bought, and at most `compute_allowance_usd` of compute per point; a point's
    # budget is what its labels cost plus the allowance (0 without unlabelled examples).
    grid_labels: Sequence[int] = field(default=(), metadata=FIXED)
    grid_unlabelled: Sequence[int] = field(default=(), metadata=FIXED)
    compute_allowance_usd: float | None = field(default=None, metadata=FIXED)  # grids only
    # Budget-aware mode: the budget is searched in [low, high] too; two objectives (score up,
    # dollars spent down) and a Pareto set instead of one best trial.
    budget_range: Sequence[float] = field(default=(), metadata=FIXED)
    warm_start: Sequence[str] = ()  # tasks whose best allocations are tried first
    cache: bool = True  # share teachers and soft labels between trials (see objectives.cache)
    max_spend_usd: float | None = None  # start no trial that could take the sweep ledger over it

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\'\" "):
            raise ValueError(
                f"A sweep name needs letters, digits, '-', '_', '.' or '=' only, but got "
                f"name={self.name!r}."
            )
        for field_name in ("n_trials", "seeds", "concurrency"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field_name} >= 1` must hold, but got {field_name}={value!r}.")
        if self.retries < 0:
            raise ValueError(f"`retries >= 0` must hold, but got retries={self.retries!r}.")
        if self.max_spend_usd is not None and not self.max_spend_usd > 0:
            raise ValueError(
                f"`max_spend_usd > 0` must hold, but got max_spend_usd={self.max_spend_usd!r}."
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler={self.sampler!r}; valid: {', '.join(SAMPLERS)}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"Unknown objective={self.objective!r}; valid: {', '.join(OBJECTIVES)}."
            )
        if self.objective == "replay" and not self.replay_table:
            raise ValueError("--objective replay needs --replay-table FILE (a CSV of results).")
        # Plain copies, not read-only proxies: the config is pickled to Ray workers and
        # stored as JSON in the study.
        object.__setattr__(self, "trial", _absolute_paths(dict(self.trial)))
        # Every path is made absolute here, in the driver: Ray runs each trial in its own
        # working directory, where a relative path would name another (empty) store.
        object.__setattr__(self, "root", str(Path(self.root).resolve()))
        for name in ("tracking_uri", "storage"):
            uri = getattr(self, name)
            object.__setattr__(self, name, None if uri is None else absolute_uri(uri))
        if self.replay_table:
            object.__setattr__(self, "replay_table", str(Path(self.replay_table).resolve()))
        for name in ("grid_labels", "grid_unlabelled", "budget_range", "warm_start"):
            object.__setattr__(self, name, list(getattr(self, name)))
        self._check_modes()

    def _check_modes(self) -> None:
        if bool(self.grid_labels) != bool(self.grid_unlabelled):
            raise ValueError("A grid needs both --labels and --unlabelled.")
        if any(n < 1 for n in self.grid_labels) or any(n < 0 for n in self.grid_unlabelled):
            raise ValueError(
                f"Grid labels must be >= 1 and unlabelled counts >= 0, but got "
                f"labels={self.grid_labels}, unlabelled={self.grid_unlabelled}."
            )
        if self.grid_labels and self.n_seed_labels:
            raise ValueError("A grid buys all its labels: n_seed_labels must be 0.")
        self._check_allowance()
        if self.budget_range:
            low, high = [*self.budget_range, 0.0, 0.0][:2]
            if len(self.budget_range) != 2 or not 0 < low < high:
                raise ValueError(
                    "`0 < low < high` must hold for --budget-range LOW,HIGH, but got "
                    f"{','.join(f'{b:g}' for b in self.budget_range)}."
                )
            if self.sampler == "grid" or self.grid_labels:
                raise ValueError("--budget-range needs a searching sampler, not a grid.")
        if self.warm_start and (self.sampler == "grid" or self.grid_labels):
            raise ValueError("--warm-start needs a searching sampler, not a grid.")

    def _check_allowance(self) -> None:
        allowance = self.compute_allowance_usd
        if not self.grid_labels:
            if allowance is not None:
                raise ValueError(
                    "compute_allowance_usd is a grid's (`sweep grid --compute-allowance`); a "
                    "budget sweep splits budget_usd instead."
                )
            return
        if allowance is None or not math.isfinite(allowance) or not allowance > 0:
            raise ValueError(
                "`compute_allowance_usd > 0` must hold, but got "
                f"compute_allowance_usd={allowance!r}."
            )
        if self.budget_usd:
            raise ValueError(
                "A grid point buys its labels and pays its compute: a grid takes no budget "
                f"(budget_usd must be 0, got {self.budget_usd!r}); compute_allowance_usd "
                "caps each point's compute."
            )

    @property
    def is_grid(self) -> bool:
        return bool(self.grid_labels)

    @property
    def multi_objective(self) -> bool:
        return bool(self.budget_range)

    @property
    def tracking(self) -> str:
        return self.tracking_uri or default_tracking(self.root)

    @property
    def optuna_storage(self) -> str:
        return self.storage or default_storage(self.root)

    @property
    def ray_storage(self) -> str:
        return str(Path(self.root) / "ray")

    @property
    def report_dir(self) -> str:
        """Where plots and tables of this sweep's store go by default."""
        return str(Path(self.root) / "report")

    @property
    def cache_dir(self) -> str | None:
        """The stage cache trials share (None: every trial computes every stage itself)."""
        if not self.cache:
            return None
        return str(self.trial.get("cache_dir") or Path(self.root) / "cache")

    @property
    def space_name(self) -> str:
        if self.space:
            return self.space
        return "fraction_grid" if self.sampler == "grid" else "distill_or_annotate"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["trial"] = dict(self.trial)
        return out

    def trial_budget_usd(self, config: Mapping[str, Any], usd_per_label: float) -> float:
        """The budget of one trial: the sweep's, the sampled one, or a grid point's cost (its
        labels, plus the compute allowance where it has unlabelled examples to distil)."""
        if self.is_grid:
            distils = int(config["n_unlabelled"]) > 0
            allowance = (self.compute_allowance_usd or 0.0) if distils else 0.0
            return round(int(config["n_labels"]) * usd_per_label + allowance, 6)
        return float(config.get("budget_usd", self.budget_usd))


SWEEP_FIELDS = frozenset(f.name for f in dataclasses.fields(SweepConfig))
FIXED_ON_RESUME = tuple(
    f.name for f in dataclasses.fields(SweepConfig) if f.metadata.get("fixed_on_resume")
)
_PATH_FIELDS = ("data_dir", "cache_dir", "task_file")


def _absolute_paths(trial: dict[str, Any]) -> dict[str, Any]:
    return {k: str(Path(v).resolve()) if k in _PATH_FIELDS and v else v for k, v in trial.items()}


def absolute_uri(uri: str) -> str:
    """A store URI whose local file, if any, is named by an absolute path."""
    path = store_path(uri)
    if path is None or path.is_absolute():
        return uri
    return f"sqlite:///{path.resolve()}" if uri.startswith("sqlite:///") else str(path.resolve())


def store_path(uri: str) -> Path | None:
    """The local file behind a store URI: a SQLite database or an Optuna journal file;
    None for a server or a database reached over the network."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return Path(uri) if "://" not in uri else None


def check_writable(uri: str, what: str) -> None:
    """Refuse a store whose file could not be created or written, before anything is."""
    path = store_path(uri)
    if path is None:
        return
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if (
        not folder.is_dir()
        or not os.access(folder, os.W_OK)
        or (path.exists() and not os.access(path, os.W_OK))
    ):
        raise ValueError(
            f"{what} {uri!r} is not writable ({folder} is not a writable folder); choose a "
            "folder you can write to."
        )


def default_tracking(root: str) -> str:
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def default_storage(root: str) -> str:
    return f"sqlite:///{Path(root).resolve() / 'optuna.db'}"


def artifact_root(tracking_uri: str) -> str | None:
    """Where a local store keeps its runs' artifacts: beside the database, never MLflow's
    default `./mlruns` in whatever folder the command ran from (None: the server decides)."""
    path = store_path(tracking_uri)
    return None if path is None else (path.parent / "artifacts").resolve().as_uri()


def default_sweep_name(task: str, budget_usd: float, n_seed_labels: int) -> str:
    return f"{task}-B{budget_usd:g}-N{n_seed_labels}"
