"""Per-sample quality filters (scores + reasons) and dataset-level quality metrics."""
