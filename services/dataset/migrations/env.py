from forge_dataset.tables import metadata
from forge_kit.migration_env import run_migrations

run_migrations(metadata)
