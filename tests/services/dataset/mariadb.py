"""A private MariaDB server for the SQL import tests: a datadir initialised under a temp dir, `mariadbd`
on a free loopback port (as the `mysql` user when running as root), stopped and removed at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.harness import free_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


@dataclass(frozen=True)
class MariaDb:
    host: str
    port: int
    database: str
    user: str
    password: str
    socket: str

    def connect(self, database: str | None = None) -> pymysql.Connection:  # type: ignore[type-arg]
        """A root connection over the server's socket (for the tests' own setup)."""
        return pymysql.connect(unix_socket=self.socket, user="root", database=database, autocommit=True)


def _owner() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("mysql")
        return ["--user=mysql"]
    except KeyError:
        return ["--user=root"]


def _wait_ready(process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {log.read_text()[-2000:]}")
        try:
            pymysql.connect(unix_socket=str(socket), user="root").close()
            return
        except (pymysql.err.OperationalError, FileNotFoundError):
            time.sleep(0.1)
    raise TimeoutError(f"mariadbd did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDb]:
    """A running MariaDB with a database and a user of the tests' own (skipped where none is installed)."""
    if not (Path(MARIADBD).exists() and Path(INSTALL_DB).exists()):
        pytest.skip("MariaDB is not installed")
    home = Path(tempfile.mkdtemp(prefix="forge-mariadb-"))
    datadir, log = home / "data", home / "mariadbd.log"
    user = _owner()
    if user == ["--user=mysql"]:
        shutil.chown(home, "mysql", "mysql")
    subprocess.run(
        [
            INSTALL_DB,
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            MARIADBD,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={home / 'mariadb.sock'}",
            f"--pid-file={home / 'mariadb.pid'}",
            f"--log-error={log}",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(process, home / "mariadb.sock", log)
        server = MariaDb("127.0.0.1", port, "shop", "importer", uuid.uuid4().hex, str(home / "mariadb.sock"))
        root = server.connect()
        with root.cursor() as cursor:
            cursor.execute("CREATE DATABASE shop")
            cursor.execute(f"CREATE USER 'importer'@'%' IDENTIFIED BY '{server.password}'")
            cursor.execute("GRANT ALL ON shop.* TO 'importer'@'%'")
        root.close()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)
