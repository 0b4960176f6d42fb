"""Feature engineering (DP-3): transformers fitted on one version and applied to others, on Ray."""
