"""Per-trial resources, computed from the sampled configuration.

A distillation trial holds the teacher's devices; an annotation-only trial needs only the
student's share. On a cluster with node types, a custom resource (e.g. `teacher_node`)
steers each kind of trial to the nodes that have what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class TrialResources:
    cpus: float
    gpus: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.gpus < 0 or any(v < 0 for v in self.custom.values()):
            raise ValueError(
                f"`cpus > 0, gpus >= 0` must hold, but got cpus={self.cpus}, gpus={self.gpus}, "
                f"custom={dict(self.custom)}."
            )
        object.__setattr__(self, "custom", MappingProxyType(dict(self.custom)))

    def as_ray_dict(self) -> dict[str, float]:
        """The resource dict `tune.with_resources` takes."""
        out: dict[str, float] = {"CPU": self.cpus, "GPU": self.gpus}
        out.update(self.custom)
        return out

    def describe(self) -> str:
        parts = [f"{self.cpus:g} CPU", f"{self.gpus:g} GPU"]
        parts += [f"{v:g} {k}" for k, v in self.custom.items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class ClusterProfile:
    """What each kind of trial asks for.

    Fractional student GPUs are opt-in (`student_gpus < 1`): two trials then share one
    GPU's memory, and nothing stops either from taking all of it.
    """

    cpus_per_trial: float = 1.0
    teacher_gpus: float = 0.0
    student_gpus: float = 0.0
    teacher_node_resource: str | None = None
    student_node_resource: str | None = None

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0 or self.teacher_gpus < 0 or self.student_gpus < 0:
            raise ValueError(
                "`cpus_per_trial > 0, teacher_gpus >= 0, student_gpus >= 0` must hold, but got "
                f"{self.cpus_per_trial}, {self.teacher_gpus}, {self.student_gpus}."
            )


def trains_a_teacher(config: Mapping[str, object]) -> bool:
    """Whether a sampled point trains a teacher: a compute share above zero, or in grid mode
    (whose points name `n_labels` and `n_unlabelled`, no share) a pool to distil."""
    amount = config.get("n_unlabelled", config.get("compute_fraction", 0.0))
    return isinstance(amount, int | float) and amount > 0


def resources_for(config: Mapping[str, object], profile: ClusterProfile) -> TrialResources:
    """Resources of one trial: the teacher's when it distils, the student's otherwise."""
    distills = trains_a_teacher(config)
    gpus = profile.teacher_gpus if distills else profile.student_gpus
    node = profile.teacher_node_resource if distills else profile.student_node_resource
    # A sliver of the node-type resource: any number of trials fit, but only on that type.
    custom = {node: 0.001} if node else {}
    return TrialResources(cpus=profile.cpus_per_trial, gpus=gpus, custom=custom)


def check_feasible(
    resources: TrialResources, nodes: Sequence[Mapping[str, float]], what: str = "a trial"
) -> None:
    """Refuse up front a trial that no node could ever hold (it would stay PENDING)."""
    need = resources.as_ray_dict()
    for node in nodes:
        if all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0):
            return
    largest = ", ".join(
        "{"
        + ", ".join(f"{k}: {v:g}" for k, v in sorted(n.items()) if not k.startswith("node:"))
        + "}"
        for n in nodes
    )
    raise ValueError(
        f"{what} needs {resources.describe()}, which no node of the cluster has "
        f"(nodes: {largest or 'none'}); lower --cpus-per-trial/--teacher-gpus or add such a node."
    )
