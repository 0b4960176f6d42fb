"""A single-node HDFS with WebHDFS (Hadoop's MiniDFSCluster), for the HDFS-import tests and local use.

`infra/local/hdfs/` holds a Maven project: the shaded Hadoop client jars (hadoop-client-minicluster,
-api, -runtime) and a small main, MiniHdfs.java. `ensure_hdfs()` compiles it and copies its jars once
into the tools cache (`~/.cache/forge/hdfs-<version>-<digest>/`, keyed by the project's files; about
106 MiB; 13-35 s on a fresh machine), so later starts only launch java (ready in 15-30 s).
`forge stack install` builds it; `python -m forge_cli.hdfs` runs one in the foreground on fixed ports:

    uv run --frozen python -m forge_cli.hdfs            # WebHDFS on http://127.0.0.1:9870
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from forge_cli.tools import ToolMissing, _cache_lock, cache_dir, java_bin, repo_root

HADOOP_VERSION = "3.5.0"
MAIN_CLASS = "dev.forge.infra.hdfs.MiniHdfs"
READY_TIMEOUT_S = 120.0


def hdfs_project() -> Path:
    return repo_root() / "infra" / "local" / "hdfs"


def hdfs_home() -> Path:
    """The cache folder of the built MiniHdfs: keyed by the Hadoop version and the project's files."""
    project = hdfs_project()
    digest = hashlib.sha256()
    for path in sorted([project / "pom.xml", *project.glob("src/**/*.java")]):
        digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes())
    return cache_dir() / f"hdfs-{HADOOP_VERSION}-{digest.hexdigest()[:12]}"


def ensure_hdfs() -> Path:
    """Build MiniHdfs (classes and its jars) once; later calls return the cached folder at once."""
    home = hdfs_home()
    if (home / ".complete").exists():
        return home
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing("mvn not found: run infra/local/bootstrap.sh (maven)")
    with _cache_lock("hdfs"):
        if (home / ".complete").exists():
            return home
        staging = home.parent / f"{home.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(hdfs_project() / "pom.xml"),
                "compile",
                "dependency:copy-dependencies",
                f"-Dforge.build={staging / 'build'}",
                f"-DoutputDirectory={staging / 'libs'}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ToolMissing(f"building MiniHdfs failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
        (home / ".complete").touch()
    return home


@dataclass(frozen=True)
class HdfsPorts:
    """Ports of one MiniHdfs; 0 lets it pick a free one (all on 127.0.0.1)."""

    namenode: int = 0
    http: int = 0
    datanode: int = 0
    datanode_http: int = 0
    datanode_ipc: int = 0
    datanode_proxy: int = 0


class MiniHdfs:
    """One MiniHdfs process: `start()` waits until it is up, `stop()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, base: Path, ports: HdfsPorts | None = None) -> None:
        self.base, self.ports = base, ports or HdfsPorts()
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, int] = {}

    @property
    def log_path(self) -> Path:
        return self.base / "minihdfs.log"

    @property
    def webhdfs(self) -> str:
        """The NameNode's HTTP address (WebHDFS under /webhdfs/v1)."""
        return f"http://127.0.0.1:{self.ready['http']}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> MiniHdfs:
        home = ensure_hdfs()
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        ready_file = self.base / "ready.json"
        p = self.ports
        argv = [
            java_bin(),
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-cp",
            f"{home / 'build' / 'classes'}{os.pathsep}{home / 'libs'}/*",
            MAIN_CLASS,
            f"base={self.base / 'data'}",
            f"ready-file={ready_file}",
            f"namenode={p.namenode}",
            f"http={p.http}",
            f"datanode={p.datanode}",
            f"datanode-http={p.datanode_http}",
            f"datanode-ipc={p.datanode_ipc}",
            f"datanode-proxy={p.datanode_proxy}",
            f"watch-pid={os.getpid()}",  # it stops when this process ends, however it ends
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not ready_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise ToolMissing(f"MiniHdfs did not start (see {self.log_path}):\n{tail}")
            time.sleep(0.2)
        self.ready = json.loads(ready_file.read_text())
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    """Run one MiniHdfs in the foreground (Ctrl-C stops it): WebHDFS on 9870, the NameNode on 8020."""
    ports = HdfsPorts(namenode=8020, http=9870, datanode=9866, datanode_http=9864, datanode_ipc=9867)
    hdfs = MiniHdfs(cache_dir() / "hdfs-local", ports)
    print(f"starting MiniHdfs (Hadoop {HADOOP_VERSION}), logs in {hdfs.log_path}", file=sys.stderr)
    hdfs.start()
    print(f"WebHDFS on {hdfs.webhdfs}/webhdfs/v1/ ({hdfs.ready})", flush=True)
    try:
        assert hdfs.process is not None
        hdfs.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        hdfs.stop()


if __name__ == "__main__":
    main()
