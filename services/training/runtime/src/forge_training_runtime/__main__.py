"""Entry point of `python -m forge_training_runtime`."""

from forge_training_runtime.cli import main

raise SystemExit(main())
