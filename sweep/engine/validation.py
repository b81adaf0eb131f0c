"""Everything a sweep can check before a file is written, each with one clear error: the
budget, the task and its data, the stores' folders, the cluster's address and resources."""

from __future__ import annotations

from pathlib import Path

from cluster import check_reachable, ray_address
from objectives.budget import Budget, allocate
from objectives.data import local_data
from objectives.meter import meter_cost_model
from objectives.trial_config import check_model_paths, trial_config
from search_spaces import get_space
from sweep.config import SweepConfig, check_writable, store_path
from sweep.engine.raystart import check_ray_cluster, cluster_profile, resolve_auto
from sweep.engine.trainable import base_fields
from sweep.tracking.sqlite import check_store, store_lock


def validate(cfg: SweepConfig) -> None:
    """Everything that can be checked before a file is written, with one clear error."""
    if cfg.mode.has_budget:  # a grid's points have theirs; SweepConfig checks its allowance
        Budget(cfg.budget_usd)
    base = trial_config(base_fields(cfg, 0.0, 0), cfg.preset)
    spec = base.task_spec()
    meter_cost_model(base.meter, spec, base.charge_student_training)  # --meter paper's needs
    if cfg.mode.has_budget:
        lowest = cfg.mode.lowest_budget_usd(cfg.budget_usd)
        annotate = allocate(spec.name, lowest, 0.0, base.prices(spec), cfg.n_seed_labels)
        if annotate.n_new_labels == 0:
            raise ValueError(
                f"budget_usd={lowest:g} buys no label at ${annotate.usd_per_label:g} per "
                f"label for {spec.name!r}; a sweep needs a budget of at least one label."
            )
    # The real objective reads the task's data; a stand-in does not, but reads it all the
    # same wherever its files are on this machine (a task file's, --data-dir, DOA_DATA_DIR):
    # what the real objective would refuse is refused here too. A stand-in never downloads a
    # data set to check it.
    if cfg.objective == "real" or base.task_file or local_data(spec, base.data_dir):
        from objectives.data import load_task_data

        data = load_task_data(spec, base.data_dir)
        labelled = cfg.mode.most_labels(cfg.n_seed_labels)
        if labelled > len(data.train):
            raise ValueError(
                f"`labels <= train pool size` must hold, but {labelled} labels were asked "
                f"for {spec.name!r}, whose pool has {len(data.train)} rows."
            )
    if cfg.objective == "real":
        check_model_paths(base)
    if cfg.objective == "replay":
        from objectives.standins import ReplayTable

        ReplayTable.from_csv(str(cfg.replay_table))
    get_space(cfg.space_name)
    _check_stores(cfg)
    address = resolve_auto(ray_address(cfg.address))
    check_reachable(address)
    check_ray_cluster(address)  # something listens: is it Ray?
    cluster_profile(cfg)  # refuses negative or zero resources before anything is written


def _check_stores(cfg: SweepConfig) -> None:
    """The root first, then each store: an error names the option the user gave (a store
    left under --root is reported as --root's); a local store that exists must be whole."""
    root = str(Path(cfg.root).resolve())
    check_writable(str(Path(root) / "x"), "--root", root)
    for uri, given, option in (
        (cfg.tracking, cfg.tracking_uri, "--tracking-uri"),
        (cfg.optuna_storage, cfg.storage, "--storage"),
    ):
        check_writable(uri, option if given is not None else "--root", None if given else root)
    for uri, what, table in (
        (cfg.tracking, "MLflow store", "experiments"),
        (cfg.optuna_storage, "Optuna store", "studies"),
    ):
        path = store_path(uri) if uri.startswith("sqlite:") else None
        if path is not None and path.exists():
            with store_lock(path):  # a store another sweep is making is whole once it is made
                check_store(path, what, table)
