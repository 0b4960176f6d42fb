"""Splits of a version (DS-4): ratio, stratified, grouped and k-fold, as background dataset tasks."""
