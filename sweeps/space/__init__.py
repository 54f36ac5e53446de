"""The search space: the schema's space as Optuna distributions, `auto` bounds, samplers."""
