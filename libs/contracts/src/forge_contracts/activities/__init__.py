"""Temporal activity interfaces: names and Pydantic input/output models, one module per service.

A workflow in one service calls another service's activity by name on that service's task queue
(`forge-<service>`), with the models defined here, so neither imports the other's code."""
