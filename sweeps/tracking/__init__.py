"""What a sweep and its trials write to MLflow: names, tags, the summary, artifacts."""
