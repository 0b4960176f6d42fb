"""Row-level and file-level diffs between two versions of a dataset (DS-2), as dataset tasks."""
