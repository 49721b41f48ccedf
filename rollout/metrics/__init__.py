"""Per-minute rollups of calls, errors and latencies in PostgreSQL (rollups), exposed at /metrics (prometheus)."""
