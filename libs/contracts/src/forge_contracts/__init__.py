"""Forge contracts: what services agree on (events, state machines, activity models)."""
