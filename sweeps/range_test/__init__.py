"""The LR range test: the run, its suggestion rule, its report and its MLflow record."""
