"""Lineage across services (DP-4): one graph built from every service's events, queryable both ways,
sent on as OpenLineage run events."""
