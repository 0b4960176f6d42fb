"""Processing pipelines (DP-1): cleaning and dedup operators run on Ray as scheduler workloads."""
