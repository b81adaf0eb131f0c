"""Where results live: the MLflow layout (`mlflow_store`), the result schema and its tags
(`schema`), the rows read back and the ranking rule (`results`), the Optuna storage
(`optuna_store`). Imports only `sweep.config` of this package."""
