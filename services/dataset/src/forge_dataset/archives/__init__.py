"""Archives (zip, tar, tar.gz) uploaded to be expanded into a draft version."""
