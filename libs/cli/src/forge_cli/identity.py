"""The stack's identity provider: an OpenLDAP directory and Keycloak federating it (docs/identity.md).

- `Ldap`: a private slapd (Debian `slapd`), configured and seeded once per state folder from
  `infra/identity/slapd-config.ldif` and `infra/identity/seed.ldif`, on `ldap://127.0.0.1:<port>`.
- `Keycloak`: the distribution built once in the tool cache (`tools.ensure_keycloak`), run with
  `kc.home.dir` pointing at `<state>/keycloak` (config, import folder, temporary files) and its data in
  the stack's PostgreSQL (database and role `forge_keycloak`). The realm `forge` is imported on the
  first start from `infra/identity/forge-realm.json`; its secrets are `${FORGE_...}` placeholders that
  Keycloak fills in from the environment we start it with, so no secret is written into a file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from string import Template

import httpx
from forge_kit.stack_env import SERVICES

from forge_cli import tools
from forge_cli.stack import HOST, DetachedServer, Stack, StackError, port_open

BASE_DN = "dc=forge,dc=local"
ADMIN_DN = f"cn=admin,{BASE_DN}"
REALM = "forge"
AUDIENCE = "forge"
KEYCLOAK_ADMIN_USER = "admin"
DEMO_USER = "demo"
CLI_CLIENT_ID = "forge-cli"
CONSOLE_CLIENT_ID = "forge-console"
KEYCLOAK_DATABASE = "forge_keycloak"


def identity_dir() -> Path:
    return tools.repo_root() / "infra" / "identity"


def ssha(password: str) -> str:
    """An OpenLDAP `{SSHA}` hash (salted SHA-1) of the password, with a fresh salt."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - what {SSHA} is, by definition
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def service_client_id(service: str) -> str:
    """Every service's confidential client in the realm is `forge-<service>`."""
    return f"forge-{service}"


def service_secret_key(service: str) -> str:
    """The stack secret (and, prefixed with FORGE_, the env name) of a service's client secret."""
    return f"{service.upper()}_CLIENT_SECRET"


def _openldap_program(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name) if p.exists()), None
    )
    if not found:
        raise tools.ToolMissing(f"{name} not found: run infra/local/bootstrap.sh (apt slapd ldap-utils)")
    return found


def _first_dir(candidates: tuple[str, ...], holding: str) -> Path:
    for candidate in candidates:
        if (Path(candidate) / holding).exists():
            return Path(candidate)
    raise tools.ToolMissing(f"no {holding} in {', '.join(candidates)}: is OpenLDAP (slapd) installed?")


class Ldap(DetachedServer):
    """OpenLDAP's slapd with one database, `dc=forge,dc=local`: people, the platform-admins group."""

    name = "ldap"
    process_marker = "slapd"
    start_timeout_s = 30.0

    @property
    def url(self) -> str:
        return f"ldap://{HOST}:{self.stack.ports.ldap}"

    def endpoints(self) -> dict[str, str]:
        return {"ldap": self.url, "base_dn": BASE_DN}

    @property
    def config_dir(self) -> Path:
        return self.dir / "slapd.d"

    @property
    def seeded_marker(self) -> Path:
        return self.dir / ".seeded"

    def prepare(self) -> None:
        """Write cn=config and load the seed, once per state folder (a half-done attempt is redone)."""
        if self.seeded_marker.exists():
            return
        shutil.rmtree(self.config_dir, ignore_errors=True)
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir()
        self.dir.chmod(0o700)
        source = identity_dir()
        config = Template((source / "slapd-config.ldif").read_text()).substitute(
            LDAP_DIR=str(self.dir),
            MODULE_DIR=str(
                _first_dir(("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"), "back_mdb.so")
            ),
            SCHEMA_DIR=str(_first_dir(("/etc/ldap/schema", "/etc/openldap/schema"), "core.ldif")),
            ADMIN_PASSWORD_SSHA=ssha(self.stack.secrets.get("LDAP_ADMIN_PASSWORD")),
        )
        demo_password = self.stack.secrets.get("DEMO_PASSWORD")
        # A fresh salt for every user, so equal passwords do not give equal hashes.
        seed = re.sub(
            r"\$\{DEMO_PASSWORD_SSHA\}", lambda _: ssha(demo_password), (source / "seed.ldif").read_text()
        )
        slapadd = _openldap_program("slapadd")
        for database, ldif in (("0", config), ("1", seed)):
            result = subprocess.run(
                [slapadd, "-n", database, "-F", str(self.config_dir), "-l", "/dev/stdin"],
                input=ldif,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"slapadd -n{database} failed: {result.stderr.strip() or result.stdout}")
        self.seeded_marker.touch()

    def argv(self) -> list[str]:
        # -d keeps slapd in the foreground (we track its pid); level 0 logs only what must be logged.
        return [
            _openldap_program("slapd"),
            "-d",
            "0",
            "-F",
            str(self.config_dir),
            "-h",
            f"{self.url}/",
        ]

    def healthy(self) -> bool:
        """An anonymous LDAP bind is answered with success (a plain BER exchange, no client library)."""
        if not port_open(self.stack.ports.ldap):
            return False
        bind_request = bytes.fromhex("300c020101600702010304008000")  # messageID 1, v3, "", simple ""
        try:
            with socket.create_connection((HOST, self.stack.ports.ldap), timeout=2) as sock:
                sock.sendall(bind_request)
                reply = sock.recv(64)
        except OSError:
            return False
        # BindResponse (0x61) whose resultCode (ENUMERATED 0x0a, length 1) is success (0).
        return b"\x61" in reply and b"\x0a\x01\x00" in reply


QUARKUS_PROPERTIES = "quarkus.datasource.jdbc.validate-on-borrow=true\n"
"""Runtime Quarkus settings of Keycloak (`conf/quarkus.properties`; no `kc.sh build` needed)."""


class Keycloak(DetachedServer):
    """Keycloak in production mode (`start --optimized`) on 127.0.0.1, its data in PostgreSQL."""

    name = "keycloak"
    process_marker = "kc.sh"
    start_timeout_s = 300.0  # first boot creates the schema and imports the realm; minutes on 2 busy cores

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.stack.ports.keycloak}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    def endpoints(self) -> dict[str, str]:
        return {
            "http": self.url,
            "issuer": self.issuer,
            "admin": f"{self.url}/admin/",
            "management": f"http://{HOST}:{self.stack.ports.keycloak_management}",
        }

    def prepare(self) -> None:
        distribution = tools.ensure_keycloak()
        for folder in ("conf", "data/import", "providers", "themes"):
            (self.dir / folder).mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        # The built server (lib/quarkus) is found under kc.home.dir: link the cached one.
        lib = self.dir / "lib"
        if lib.is_symlink() and lib.resolve() != (distribution / "lib").resolve():
            lib.unlink()  # another Keycloak version
        if not lib.is_symlink():
            lib.symlink_to(distribution / "lib")
        # Validate a pooled database connection before handing it out: after a PostgreSQL restart the
        # pool's connections are dead, and without this Keycloak answers 500 until each has failed once.
        (self.dir / "conf" / "quarkus.properties").write_text(QUARKUS_PROPERTIES)
        # Imported only when the realm does not exist yet; a changed file needs a fresh realm.
        shutil.copyfile(
            identity_dir() / "forge-realm.json", self.dir / "data" / "import" / "forge-realm.json"
        )
        asyncio.run(self._ensure_database())

    async def _ensure_database(self) -> None:
        """The role and database `forge_keycloak` in the stack's PostgreSQL (which starts before us)."""
        import asyncpg

        try:
            conn = await asyncpg.connect(
                host=HOST,
                port=self.stack.ports.pg,
                user="forge",
                password=self.stack.secrets.get("PG_ADMIN_PASSWORD"),
                database="postgres",
            )
        except (OSError, asyncpg.PostgresError) as error:
            raise StackError(f"keycloak needs PostgreSQL for its database: {error}") from error
        try:
            role = KEYCLOAK_DATABASE
            quoted = await conn.fetchval(
                "SELECT quote_literal($1)", self.stack.secrets.get("PG_KEYCLOAK_PASSWORD")
            )
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            await conn.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {role} WITH LOGIN PASSWORD {quoted}")
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", role):
                await conn.execute(f"CREATE DATABASE {role} OWNER {role}")
            await conn.execute(f"REVOKE ALL ON DATABASE {role} FROM PUBLIC")
            await conn.execute(f"GRANT CONNECT ON DATABASE {role} TO {role}")
        finally:
            await conn.close()

    def argv(self) -> list[str]:
        ports = self.stack.ports
        home = tools.keycloak_home()
        return [
            str(home / "bin" / "kc.sh"),
            # kc.sh points kc.home.dir at the distribution; the later -D wins, so config, the import
            # folder and temporary files are this state folder's while the built server is shared.
            f"-Dkc.home.dir={self.dir}",
            f"-Djboss.server.config.dir={self.dir / 'conf'}",
            "start",
            "--optimized",
            "--import-realm",
            "--cache=local",  # one node: no JGroups cluster (production mode would form one)
            "--http-enabled=true",
            f"--http-host={HOST}",
            f"--http-port={ports.keycloak}",
            f"--http-management-port={ports.keycloak_management}",
            f"--hostname={self.url}",
            f"--db-url=jdbc:postgresql://{HOST}:{ports.pg}/{KEYCLOAK_DATABASE}",
            f"--db-username={KEYCLOAK_DATABASE}",
            "--log-level=info",
        ]

    def env(self) -> dict[str, str]:
        """Passwords travel in the environment (not the command line): Keycloak's own, and the
        `${FORGE_...}` placeholders of the realm file."""
        secrets_ = self.stack.secrets
        heap = os.environ.get("FORGE_KEYCLOAK_HEAP", "512m")
        env = {
            **os.environ,
            "JAVA": tools.java_bin(),
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{heap}",
            "KC_DB_PASSWORD": secrets_.get("PG_KEYCLOAK_PASSWORD"),
            "KC_BOOTSTRAP_ADMIN_USERNAME": KEYCLOAK_ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": secrets_.get("KEYCLOAK_ADMIN_PASSWORD"),
            "FORGE_LDAP_URL": f"ldap://{HOST}:{self.stack.ports.ldap}",
            "FORGE_LDAP_ADMIN_PASSWORD": secrets_.get("LDAP_ADMIN_PASSWORD"),
        }
        for service in SERVICES:
            env[f"FORGE_{service_secret_key(service)}"] = secrets_.get(service_secret_key(service))
        return env

    def healthy(self) -> bool:
        """The forge realm's discovery document is served (so the realm was imported)."""
        try:
            response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=3)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def identity_env(stack: Stack) -> dict[str, str]:
    """The identity entries of the stack's env file (names read by forge_kit.stack_env and auth)."""
    ports, secrets_ = stack.ports, stack.secrets
    keycloak = f"http://{HOST}:{ports.keycloak}"
    values = {
        "FORGE_KEYCLOAK_URL": keycloak,
        "FORGE_OIDC_ISSUER": f"{keycloak}/realms/{REALM}",
        "FORGE_OIDC_AUDIENCE": AUDIENCE,
        "FORGE_KEYCLOAK_ADMIN_USER": KEYCLOAK_ADMIN_USER,
        "FORGE_KEYCLOAK_ADMIN_PASSWORD": secrets_.get("KEYCLOAK_ADMIN_PASSWORD"),
        "FORGE_CLI_CLIENT_ID": CLI_CLIENT_ID,
        "FORGE_CONSOLE_CLIENT_ID": CONSOLE_CLIENT_ID,
    }
    for service in SERVICES:
        values[f"FORGE_{service_secret_key(service)}"] = secrets_.get(service_secret_key(service))
    values.update(
        {
            "FORGE_LDAP_URL": f"ldap://{HOST}:{ports.ldap}",
            "FORGE_LDAP_BASE_DN": BASE_DN,
            "FORGE_LDAP_ADMIN_DN": ADMIN_DN,
            "FORGE_LDAP_ADMIN_PASSWORD": secrets_.get("LDAP_ADMIN_PASSWORD"),
            "FORGE_DEMO_USER": DEMO_USER,
            "FORGE_DEMO_PASSWORD": secrets_.get("DEMO_PASSWORD"),
        }
    )
    return values
