"""Where trials run and with how much: per-trial resources and the Ray address."""

from cluster.connect import check_reachable, ray_address
from cluster.resources import ClusterProfile, TrialResources, check_feasible, resources_for

__all__ = [
    "ClusterProfile",
    "TrialResources",
    "check_feasible",
    "check_reachable",
    "ray_address",
    "resources_for",
]
