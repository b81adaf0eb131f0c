"""`sweep doctor`: what a sweep would use, checked before it runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from objectives.data import data_source, load_task_data
from objectives.tasks import TaskSpec
from sweep.config import check_writable, store_path

if TYPE_CHECKING:
    from objectives.learn_check import Learned
    from objectives.trial_config import TrialConfig


@dataclass(frozen=True)
class Check:
    """`ok` is the outcome; a failed check that is not `required` is only a warning."""

    name: str
    ok: bool
    detail: str
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.required and not self.ok


def _guard(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except Exception as exc:  # every failure becomes a reason, not a traceback
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def check_ray(address: str | None) -> Check:
    def probe() -> str:
        from cluster import check_reachable

        if address is None:
            return f"local: an embedded Ray will use {os.cpu_count()} CPUs"
        check_reachable(address)
        from sweep.engine.raystart import check_ray_cluster

        check_ray_cluster(address)  # an open port that is not Ray would hang `ray.init`
        import ray

        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        try:
            resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
            nodes = len([n for n in ray.nodes() if n.get("Alive")])  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()
        shown = ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if "node:" not in k)
        return f"{address}: {nodes} nodes, {shown}"

    return _guard("ray", probe)


def check_tracking(uri: str) -> Check:
    def probe() -> str:
        check_writable(uri, "--tracking-uri")
        path = store_path(uri)
        if path is not None and not path.exists():
            return f"{uri} (writable; will be created by the first sweep)"
        from sweep.tracking.mlflow_store import Tracker

        n = len(Tracker(uri).experiments())
        return f"{uri} ({n} experiments)"

    return _guard("tracking store", probe)


def check_storage(uri: str) -> Check:
    def probe() -> str:
        from sweep.tracking.optuna_store import optuna_storage

        check_writable(uri, "--storage")
        path = store_path(uri)
        if path is not None and not path.exists():
            return f"{uri} (writable; will be created by the first sweep)"
        import optuna

        studies = optuna.get_all_study_names(storage=optuna_storage(uri))
        return f"{uri} ({len(studies)} studies)"

    return _guard("optuna storage", probe)


def check_data(spec: TaskSpec, data_dir: str | None, required: bool) -> Check:
    def probe() -> str:
        source = data_source(spec, data_dir)
        if source.startswith("hf:") and not required:  # a survey of every task downloads nothing
            return f"{source} (not downloaded to check; `sweep doctor --task {spec.name}` does)"
        data = load_task_data(spec, data_dir)
        return f"{source}: {len(data.train)}/{len(data.dev)}/{len(data.test)} rows"

    check = _guard(f"data {spec.name}", probe)
    return Check(check.name, check.ok, check.detail, required)


def check_devices() -> Check:
    def probe() -> str:
        import torch

        if not torch.cuda.is_available():
            return f"no GPU visible; torch {torch.__version__} on {torch.get_num_threads()} threads"
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16"
        return f"{len(names)} GPU(s): {', '.join(names)} ({bf16})"

    return _guard("devices", probe)


def check_offline() -> Check:
    from objectives.offline import env_flag

    offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if env_flag(v)]
    detail = (
        f"offline ({', '.join(offline)}): models and data must be local"
        if offline
        else "online: hub ids are downloaded when not cached (slow retries if unreachable)"
    )
    return Check("hub mode", True, detail)


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)

    def mark(c: Check) -> str:
        return "ok  " if c.ok else ("FAIL" if c.required else "warn")

    return "\n".join(f"{mark(c)} {c.name.ljust(width)}  {c.detail}" for c in checks)


# --- does this recipe learn here? ---------------------------------------------------------


def _line(who: Learned) -> str:
    """E.g. "bert-offline-student, 6 epochs at lr 0.002 on 100 labels: accuracy 0.8500,
    trivial (majority class 'pos') 0.5250, margin +0.3250 [+0.2000, +0.4500]"."""
    s = who.standing
    constant = f"; 100 % of dev rows are {s.top_prediction!r}" if s.top_share >= 1.0 else ""
    return (
        f"{who.model}, {who.epochs} epochs at lr {who.learning_rate:g} on {who.n_labels} "
        f"labels ({who.seconds:.0f} s): {who.metric} {who.score:.4f}, trivial "
        f"({who.trivial_predictor}) {who.trivial_score:.4f}, margin {s.margin:+.4f} "
        f"[{s.margin_low:+.4f}, {s.margin_high:+.4f}]{constant}"
    )


def advice(teacher: Learned, student: Learned) -> str:
    """What to try when a model of the recipe learns nothing from the seed labels."""
    if teacher.learned and student.learned:
        return "this recipe learns here: both beat the trivial baseline beyond noise"
    tips = []
    for who, flag in ((teacher, "teacher"), (student, "student")):
        if who.learned:
            continue
        lr, epochs = who.learning_rate, who.epochs
        if who.standing.top_share >= 0.95:  # collapsed to one class: too high a rate, or too short
            tips.append(
                f"the {flag} collapses to one prediction: a lower learning rate "
                f"(--{flag}-lr {lr / 3:g}) or more epochs (--{flag}-epochs {2 * epochs})"
            )
        else:
            tips.append(
                f"the {flag} does not beat the trivial baseline: more epochs (--{flag}-epochs "
                f"{2 * epochs}), another learning rate (--{flag}-lr {lr * 3:g} or {lr / 3:g}) "
                f"or a larger model (--{flag} ...)"
            )
    if not teacher.learned and not student.learned:
        tips.append(
            f"more seed labels (--seed-labels {2 * max(teacher.n_labels, 1)}); and check the "
            "data: labels that do not follow from the inputs cannot be learned"
        )
    elif teacher.learned:
        tips.append("the teacher learns: distilling it may still teach the student (`sweep run`)")
    return "; ".join(tips)


def check_learning(spec: TaskSpec, cfg: TrialConfig) -> list[Check]:
    """One small teacher and one annotate-only student on the seed labels, each against the
    trivial baseline, and what to try when they learn nothing (a failed check when neither
    learns: a sweep of this recipe would compare constant predictors)."""

    def probe() -> list[Check]:
        from objectives.learn_check import check_learning as learn

        teacher, student = learn(cfg)
        checks = [
            Check(f"learns {spec.name}: {who.role}", who.learned, _line(who), required=False)
            for who in (teacher, student)
        ]
        either = teacher.learned or student.learned
        return [*checks, Check(f"learns {spec.name}", either, advice(teacher, student))]

    try:
        return probe()
    except Exception as exc:  # a recipe that cannot even run is a reason, not a traceback
        return [Check(f"learns {spec.name}", False, f"{type(exc).__name__}: {exc}")]
