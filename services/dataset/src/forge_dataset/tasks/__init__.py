"""Dataset tasks in the background: each one its own Temporal workflow, with progress, ETA and cancel."""
