"""The cluster launcher YAML passes Ray's own validation; the KubeRay manifest has the same
worker groups and the fields KubeRay requires."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "cluster" / "configs"


def _load(name: str) -> Any:
    return yaml.safe_load((CONFIGS / name).read_text())


def test_launcher_config_passes_rays_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _load("aws.yaml")
    validate_config(prepare_config(copy.deepcopy(config)))
    types = config["available_node_types"]
    assert types["teacher_gpu"]["resources"] == {"teacher_node": 1}
    assert types["student_gpu"]["resources"] == {"student_node": 1}
    assert types["head"]["resources"] == {"CPU": 0}
    broken = copy.deepcopy(config)
    broken["available_node_types"]["teacher_gpu"]["max_workers"] = "many"
    with pytest.raises(Exception, match="'many' is not of type 'integer'"):
        validate_config(prepare_config(broken))


def test_kuberay_manifest_mirrors_the_launcher() -> None:
    manifest = _load("kuberay.yaml")
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"teacher-gpu", "student-gpu"}
    for name, resource, gpus in (
        ("teacher-gpu", "teacher_node", "8"),
        ("student-gpu", "student_node", "1"),
    ):
        group = groups[name]
        assert resource in group["rayStartParams"]["resources"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == gpus
