"""Imports from links (DS-1) as background tasks on the real stack, against a real HTTP server on
loopback (a network the tests' dataset service is configured to allow, as an administrator would for a
lab mirror): checksums, sizes and content types checked, redirects followed and re-checked, private
and metadata addresses refused, and nothing half-written when an import fails."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.harness import free_port
from tests.services.dataset.conftest import DatasetService, EventLog
from tests.services.dataset.test_dataset_service import ACME, create_dataset, jsonl
from tests.services.dataset.test_splits import split_done

RECORDS = jsonl([{"id": i, "text": f"line {i}"} for i in range(2000)])
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PAGES: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
    "/cat.png": (200, "image/png", PNG, {}),
    "/train.jsonl": (200, "application/x-ndjson", RECORDS, {}),
    "/login": (200, "text/html; charset=utf-8", b"<html>sign in</html>", {}),
    "/broken.jsonl": (200, "text/plain", b'{"id": 1}\n{"id": \n', {}),
    "/moved": (302, "text/plain", b"", {"location": "/train.jsonl"}),
    "/to-metadata": (302, "text/plain", b"", {"location": "http://169.254.169.254/latest/meta-data/"}),
}


ETAG = '"records-v1"'
RANGES_ASKED: list[str] = []
"""The Range headers the flaky server was asked for."""


class _Files(BaseHTTPRequestHandler):
    def _breaking_off(self, *, ranges: bool) -> None:
        """RECORDS, but the connection drops halfway through any answer that starts at byte 0; with
        `ranges` the server takes `Range` (guarded by `If-Range`) and sends the rest in one piece."""
        asked = self.headers.get("range")
        if ranges and asked and self.headers.get("if-range") == ETAG:
            RANGES_ASKED.append(asked)
            first = int(asked.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("content-range", f"bytes {first}-{len(RECORDS) - 1}/{len(RECORDS)}")
            self.send_header("content-length", str(len(RECORDS) - first))
            body = RECORDS[first:]
        else:
            self.send_response(200)
            self.send_header("content-length", str(len(RECORDS)))
            body = RECORDS[: len(RECORDS) // 2]
        self.send_header("content-type", "application/x-ndjson")
        if ranges:
            self.send_header("accept-ranges", "bytes")
            self.send_header("etag", ETAG)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path in ("/flaky.jsonl", "/flaky-no-ranges.jsonl"):
            return self._breaking_off(ranges=self.path == "/flaky.jsonl")
        status, kind, body, headers = PAGES.get(self.path, (404, "text/plain", b"not found", {}))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def _import(svc: DatasetService, dataset_id: str, files: list[dict[str, Any]]) -> Any:
    return await svc.http.post(
        f"/datasets/{dataset_id}/imports", json={"source": {"type": "link", "files": files}}, headers=ACME
    )


async def _versions(svc: DatasetService, dataset_id: str) -> list[dict[str, Any]]:
    return list((await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json())


async def _staging_left(svc: DatasetService) -> list[str]:
    async with svc.store.client() as s3:
        try:
            listed = await s3.list_objects_v2(Bucket=svc.store.bucket, Prefix="tenants/acme/staging/")
            uploads = await s3.list_multipart_uploads(Bucket=svc.store.bucket)
        except s3.exceptions.NoSuchBucket:
            return []  # nothing was ever written
    return [item["Key"] for item in listed.get("Contents", [])] + [
        u["Key"] for u in uploads.get("Uploads", [])
    ]


async def test_a_link_import_publishes_a_checked_version_following_redirects(
    dataset_service: DatasetService, events: EventLog, server: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256(RECORDS).hexdigest()
    files = [
        {"url": f"{server}/train.jsonl", "name": "train.jsonl", "sha256": digest, "size_bytes": len(RECORDS)},
        {"url": f"{server}/moved", "name": "again.jsonl"},
    ]

    started = await _import(svc, dataset_id, files)

    assert started.status_code == 202, started.text
    done = await split_done(svc, dataset_id, started.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["stats"] == {"files": 2, "records": 4000, "bytes": 2 * len(RECORDS)}
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert (version["state"], version["source"], version["operation"]) == ("published", "link", "import")
    assert {f["name"]: f["sha256"] for f in version["files"]} == {
        "again.jsonl": digest,
        "train.jsonl": digest,
    }
    assert await svc.store.read_all(version["files"][0]["object_key"]) == RECORDS
    stats = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{version['id']}/stats", headers=ACME)
    ).json()
    assert stats["fields"]["id"]["present"] == 4000
    assert (await events.of(version["id"], 4))[0].data["source"] == "link"
    again = await _import(svc, dataset_id, files)
    assert (again.status_code, again.json()["id"]) == (200, done["id"])
    assert await _staging_left(svc) == []


async def test_a_download_that_breaks_off_is_resumed_with_a_range_request(
    dataset_service: DatasetService, server: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    RANGES_ASKED.clear()
    digest = hashlib.sha256(RECORDS).hexdigest()

    started = await _import(
        svc, dataset_id, [{"url": f"{server}/flaky.jsonl", "name": "t.jsonl", "sha256": digest}]
    )
    done = await split_done(svc, dataset_id, started.json()["id"])

    assert done["state"] == "succeeded" and done["attempt"] == 1, done
    assert done["stats"]["records"] == 2000
    assert RANGES_ASKED == [f"bytes={len(RECORDS) // 2}-"]


async def test_a_link_import_takes_media_served_as_their_kind(
    dataset_service: DatasetService, server: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    started = await _import(svc, dataset_id, [{"url": f"{server}/cat.png", "name": "images/cat.png"}])
    done = await split_done(svc, dataset_id, started.json()["id"])

    assert done["state"] == "succeeded", done
    version = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}", headers=ACME)
    ).json()
    assert [(f["name"], f["sha256"]) for f in version["files"]] == [
        ("images/cat.png", hashlib.sha256(PNG).hexdigest())
    ]


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ({"url": "/flaky-no-ranges.jsonl"}, "the download broke off after"),
        ({"url": "/login", "name": "cat.png"}, "served as 'text/html', not as image/png"),
        ({"url": "/train.jsonl", "sha256": "0" * 64}, "the sha256 is"),
        ({"url": "/train.jsonl", "size_bytes": 10}, "the server announces"),
        ({"url": "/login"}, "served as 'text/html', not as JSONL"),
        ({"url": "/broken.jsonl"}, "x.jsonl line 2: not valid JSON"),
        ({"url": "/nothing-here"}, "answered 404"),
        ({"url": "/to-metadata"}, "169.254.169.254: not a public address"),
    ],
    ids=[
        "no-ranges",
        "html-image",
        "checksum",
        "size",
        "html",
        "bad-jsonl",
        "missing",
        "redirect-to-metadata",
    ],
)
async def test_a_failed_link_import_says_why_and_leaves_no_version(
    dataset_service: DatasetService, server: str, file: dict[str, Any], reason: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    started = await _import(svc, dataset_id, [{"name": "x.jsonl", **file, "url": server + file["url"]}])

    assert started.status_code == 202, started.text
    done = await split_done(svc, dataset_id, started.json()["id"])
    assert done["state"] == "failed" and reason in done["error"], done
    assert await _versions(svc, dataset_id) == []
    assert await _staging_left(svc) == []


async def test_an_unreachable_server_fails_the_import_after_retries(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    closed = f"http://127.0.0.1:{free_port()}/train.jsonl"

    started = await _import(svc, dataset_id, [{"url": closed, "name": "x.jsonl"}])
    done = await split_done(svc, dataset_id, started.json()["id"])

    assert done["state"] == "failed" and "could not be reached" in done["error"], done
    assert done["attempt"] == 3
    assert await _versions(svc, dataset_id) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "not a public address"),
        ("http://10.1.2.3/data.jsonl", "not a public address"),
        ("http://[::1]:8080/data.jsonl", "not a public address"),
        ("http://user:secret@127.0.0.1/x.jsonl", "credentials in the URL"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/x.jsonl", "only http and https"),
        ("http://no-such-host.invalid/x.jsonl", "cannot be resolved"),
    ],
)
async def test_links_the_service_may_not_fetch_are_a_422_before_any_task(
    dataset_service: DatasetService, url: str, reason: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    refused = await _import(svc, dataset_id, [{"url": url, "name": "x.jsonl"}])

    assert refused.status_code == 422, refused.text
    assert reason in refused.json()["detail"]
    assert (await svc.http.get(f"/datasets/{dataset_id}/tasks", headers=ACME)).json() == []
    assert json.loads(refused.text)["status"] == 422
