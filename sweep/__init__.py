"""The top of the stack: wires search spaces, objectives and cluster resources to Ray Tune,
Optuna and MLflow. `sweep.tuner.run_sweep` is the Python API of `sweep run`; Ray and
MLflow are imported only by the modules that need them."""
