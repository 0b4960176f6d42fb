from forge_kit.migration_env import run_migrations

run_migrations(None)
