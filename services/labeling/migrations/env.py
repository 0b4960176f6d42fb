from forge_kit.migration_env import run_migrations
from forge_labeling.tables import metadata

run_migrations(metadata)
