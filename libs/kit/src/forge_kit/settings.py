"""Settings of one Forge service, read from the stack's env file or the environment."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from forge_kit.objects import DEFAULT_MODEL_AREAS
from forge_kit.stack_env import env_file_path, load_stack_settings, read_env_file

DEFAULT_DIRECTORY_URL = "http://127.0.0.1:18105"
"""The scheduler's default local address: it owns tenants, projects and memberships (the directory)."""


class ServiceSettings(BaseSettings):
    """Everything a service process needs to reach its database, Kafka, Temporal and S3."""

    model_config = SettingsConfigDict(env_prefix="FORGE_", extra="ignore")

    service: str
    database_url: str
    kafka_bootstrap: str
    temporal_address: str
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:18233"
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str = "us-east-1"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, description="0: let the OS pick")
    task_queue: str | None = Field(default=None, description="default: forge-<service>")
    shutdown_grace_s: float = 20.0
    oidc_issuer: str = Field(description="the OIDC issuer whose access tokens this service accepts")
    oidc_audience: str = "forge"
    oidc_jwks_uri: str | None = Field(default=None, description="default: Keycloak's path under the issuer")
    oidc_token_url: str | None = Field(default=None, description="default: Keycloak's path under the issuer")
    client_secret: str = Field(default="", description="this service's client-credentials secret")
    directory_url: str | None = Field(
        default=DEFAULT_DIRECTORY_URL,
        description="the scheduler's base URL, for tenants and memberships (None: the scheduler itself)",
    )

    oidc_client_id: str | None = Field(default=None, description="default: forge-<service>")
    model_areas: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODEL_AREAS),
        description="where a tenant's model files may be, `{tenant}` its id (forge_kit.objects)",
    )

    @property
    def client_id(self) -> str:
        """This service's own identity at the issuer: `forge-<service>` unless configured."""
        return self.oidc_client_id or f"forge-{self.service}"

    @classmethod
    def for_service(cls, service: str, **overrides: object) -> ServiceSettings:
        """Settings of `service` from the stack env file (environment variables win)."""
        stack = load_stack_settings(env_file_path())
        written = read_env_file(env_file_path())
        values: dict[str, object] = {
            "service": service,
            "database_url": os.environ.get("FORGE_DATABASE_URL") or stack.service_dsn(service),
            "kafka_bootstrap": stack.kafka_bootstrap,
            "temporal_address": stack.temporal_address,
            "temporal_namespace": stack.temporal_namespace,
            "temporal_ui_url": stack.temporal_ui_url,
            "s3_endpoint": stack.s3_endpoint,
            "s3_access_key": stack.s3_access_key,
            "s3_secret_key": stack.s3_secret_key.get_secret_value(),
            "s3_region": stack.s3_region,
            "oidc_issuer": written.get("FORGE_OIDC_ISSUER", ""),
            "oidc_audience": written.get("FORGE_OIDC_AUDIENCE", "forge"),
            "client_secret": written.get(f"FORGE_{service.upper()}_CLIENT_SECRET", ""),
            "directory_url": None
            if service == "scheduler"
            else written.get("FORGE_SCHEDULER_URL", DEFAULT_DIRECTORY_URL),
        }
        values = {k: v for k, v in values.items() if f"FORGE_{k.upper()}" not in os.environ}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
