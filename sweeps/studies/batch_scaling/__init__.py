"""The batch-scaling study: the tutorial's comparison at 8x the batch."""
