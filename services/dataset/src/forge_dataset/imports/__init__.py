"""Imports into a dataset (DS-1) as background tasks: each source streamed, checked, published."""
