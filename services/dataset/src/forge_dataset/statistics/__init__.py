"""Per-version statistics (DS-2): counts, sizes, field coverage and value (label) distributions."""
