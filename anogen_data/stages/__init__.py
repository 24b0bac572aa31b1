"""The one place that reads and writes files for each DVC stage."""
