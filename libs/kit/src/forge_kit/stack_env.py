"""Where the local stack is, as written by `forge stack up` to one env file.

Services, tests and the CLI all read the stack's endpoints from that file (or from the process
environment, which wins), so nothing else hard-codes a port or a password.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("dataset", "labeling", "training", "registry", "scheduler", "delivery")
"""The six Forge services; each gets its own database and login role."""

ENV_FILE_NAME = "stack.env"


def forge_home() -> Path:
    """The state folder of the local stack: $FORGE_HOME, else `.forge/` in the repository root."""
    explicit = os.environ.get("FORGE_HOME")
    if explicit:
        return Path(explicit).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "libs" / "kit").is_dir():
            return folder / ".forge"
    return here / ".forge"


def env_file_path() -> Path:
    """The env file the stack writes: $FORGE_ENV_FILE, else `<forge_home>/stack.env`."""
    explicit = os.environ.get("FORGE_ENV_FILE")
    return Path(explicit).resolve() if explicit else forge_home() / ENV_FILE_NAME


class StackSettings(BaseSettings):
    """Endpoints and credentials of the running stack."""

    model_config = SettingsConfigDict(env_prefix="FORGE_", extra="ignore")

    pg_host: str = "127.0.0.1"
    pg_port: int = 15432
    pg_admin_user: str = "forge"
    pg_admin_password: SecretStr = SecretStr("")
    kafka_bootstrap: str = "127.0.0.1:19092"
    temporal_address: str = "127.0.0.1:17233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:18233"
    s3_endpoint: str = "http://127.0.0.1:19000"
    s3_console_url: str = "http://127.0.0.1:19001"
    s3_access_key: str = "forge"
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    gateway_url: str = "http://127.0.0.1:18000"
    """The API gateway (forge_cli.gateway): `<gateway_url>/api/<service>/...`, with a bearer token."""
    # Identity (forge_cli.identity; docs/identity.md): Keycloak's realm `forge`, federating OpenLDAP.
    keycloak_url: str = "http://127.0.0.1:18080"
    oidc_issuer: str = "http://127.0.0.1:18080/realms/forge"
    oidc_audience: str = "forge"
    keycloak_admin_user: str = "admin"
    keycloak_admin_password: SecretStr = SecretStr("")
    cli_client_id: str = "forge-cli"
    console_client_id: str = "forge-console"
    dataset_client_secret: SecretStr = SecretStr("")
    labeling_client_secret: SecretStr = SecretStr("")
    training_client_secret: SecretStr = SecretStr("")
    registry_client_secret: SecretStr = SecretStr("")
    scheduler_client_secret: SecretStr = SecretStr("")
    delivery_client_secret: SecretStr = SecretStr("")
    ldap_url: str = "ldap://127.0.0.1:18389"
    ldap_base_dn: str = "dc=forge,dc=local"
    ldap_admin_dn: str = "cn=admin,dc=forge,dc=local"
    ldap_admin_password: SecretStr = SecretStr("")
    demo_user: str = "demo"
    demo_password: SecretStr = SecretStr("")

    def service_client(self, service: str) -> tuple[str, SecretStr]:
        """A service's OAuth client in the realm: its id (`forge-<service>`) and secret."""
        if service not in SERVICES:
            raise LookupError(f"unknown service {service!r}")
        secret: SecretStr = getattr(self, f"{service}_client_secret")
        return f"forge-{service}", secret

    def pg_admin_dsn(self, database: str = "postgres") -> str:
        """A DSN for the stack's superuser, for tooling and tests (never for a service)."""
        password = self.pg_admin_password.get_secret_value()
        return f"postgresql://{self.pg_admin_user}:{password}@{self.pg_host}:{self.pg_port}/{database}"

    def service_dsn(self, service: str) -> str:
        """The DSN of a service's own database, with its own login role (read from the env file)."""
        key = f"FORGE_{service.upper()}_DATABASE_URL"
        value = os.environ.get(key) or read_env_file(env_file_path()).get(key)
        if not value:
            raise LookupError(f"{key} is not set: is the stack up (`forge stack up`)?")
        return value


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=value lines of an env file (empty when there is none)."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def load_stack_settings(path: Path | None = None) -> StackSettings:
    """Settings from the env file, overridden by the process environment."""
    file = path or env_file_path()
    if not file.exists():
        raise FileNotFoundError(f"no stack env file at {file}: start the stack with `forge stack up`")
    return StackSettings(_env_file=file)  # type: ignore[call-arg]
