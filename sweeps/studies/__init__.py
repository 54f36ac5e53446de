"""Reproducible studies built from sweeps."""
