"""A real HDFS for the import tests: one MiniHdfs (a NameNode and a DataNode, WebHDFS on) per session.

Built once into the tools cache by forge_cli.hdfs (`forge stack install` does it ahead of time), started
here on free loopback ports and stopped when the session ends. `hdfs_url` is the NameNode's HTTP
address, the `url` of a `webhdfs` import source.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from forge_cli.hdfs import HdfsPorts, MiniHdfs

from tests.harness import free_port


def _webhdfs_up(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/webhdfs/v1/?op=GETFILESTATUS&user.name=forge", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"WebHDFS at {url} did not answer within {timeout_s}s")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def hdfs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports = HdfsPorts(*(free_port() for _ in range(6)))
    hdfs = MiniHdfs(tmp_path_factory.mktemp("minihdfs"), ports).start()
    try:
        _webhdfs_up(hdfs.webhdfs)
        yield hdfs.webhdfs
    finally:
        hdfs.stop()
