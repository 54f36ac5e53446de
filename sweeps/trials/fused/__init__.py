"""Fused trials: K trials of one Task stacked into one model and trained at once."""
