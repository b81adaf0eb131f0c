"""The run engine: Ray Tune trials driven by an Optuna study, with the spending cap, the
console and the MLflow runs kept as trials finish (`tuner.run_sweep` is its entry point;
`ray_hooks` holds everything plugged into Tune). Heavy: only commands that run sweeps load
it, apart from `progress` (a single trial's console)."""

import os

# Read by Ray when it is imported, so set before any module of the engine imports it: Tune's
# console reporter and auto-loggers are ours to replace, and worker lines stay undeduplicated.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
