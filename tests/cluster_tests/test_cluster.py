import socket

import pytest

from cluster import (
    ClusterProfile,
    TrialResources,
    check_feasible,
    check_reachable,
    ray_address,
    resources_for,
)

GPU_CLUSTER = ClusterProfile(
    cpus_per_trial=4,
    teacher_gpus=4,
    student_gpus=0.5,
    teacher_node_resource="teacher_node",
    student_node_resource="student_node",
)


def test_distillation_asks_for_the_teacher_and_annotation_for_the_student() -> None:
    distill = resources_for({"compute_fraction": 0.3}, GPU_CLUSTER)
    annotate = resources_for({"compute_fraction": 0.0}, GPU_CLUSTER)
    assert distill.as_ray_dict() == {"CPU": 4, "GPU": 4, "teacher_node": 0.001}
    assert annotate.as_ray_dict() == {"CPU": 4, "GPU": 0.5, "student_node": 0.001}


def test_a_grid_point_with_a_pool_to_distil_asks_for_the_teacher() -> None:
    # Grid points carry label and pool counts, no compute share.
    distill = resources_for({"n_labels": 100, "n_unlabelled": 10_000}, GPU_CLUSTER)
    annotate = resources_for({"n_labels": 100, "n_unlabelled": 0}, GPU_CLUSTER)
    assert distill.as_ray_dict() == {"CPU": 4, "GPU": 4, "teacher_node": 0.001}
    assert annotate.as_ray_dict() == {"CPU": 4, "GPU": 0.5, "student_node": 0.001}


def test_a_trial_no_node_can_hold_is_refused_up_front() -> None:
    nodes = [{"CPU": 16, "GPU": 2, "teacher_node": 1}, {"CPU": 8, "student_node": 1}]
    need = resources_for({"compute_fraction": 1.0}, GPU_CLUSTER)
    with pytest.raises(ValueError, match="needs 4 CPU, 4 GPU, 0.001 teacher_node, which no node"):
        check_feasible(need, nodes, "a distillation trial")
    check_feasible(TrialResources(cpus=2, gpus=1), nodes)


def test_bad_resources_are_named() -> None:
    with pytest.raises(ValueError, match="cpus=0"):
        TrialResources(cpus=0)
    with pytest.raises(ValueError, match="-1"):
        ClusterProfile(teacher_gpus=-1)


def test_address_comes_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(None) == "10.0.0.1:6379"
    assert ray_address("127.0.0.1:1") == "127.0.0.1:1"
    monkeypatch.delenv("RAY_ADDRESS")
    assert ray_address(None) is None and ray_address("local") is None


def test_unreachable_address_is_one_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match=f"--address '127.0.0.1:{port}' is unreachable"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=1)
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        check_reachable("nonsense")
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        check_reachable("localhost:abc")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
