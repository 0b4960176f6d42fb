"""Conversion of a version's record files to Parquet (DS-1's storage format), as a background task."""
