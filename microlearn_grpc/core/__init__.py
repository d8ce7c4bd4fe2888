"""The pure core: dataset ingestion and profiling, task detection, estimators, metrics — no I/O beyond local files."""
