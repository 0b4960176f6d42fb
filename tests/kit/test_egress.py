"""The kit's egress guard, without a network (a loopback server at most): which addresses a user-given URL
may reach, how a checked request is pinned to the address that was checked, and how redirects and error
statuses come out of open_stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from forge_kit.egress import EgressFailed, EgressRefused, Target, _pinned, check_url, open_stream


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:9000/x",
        "http://10.0.0.8/x",
        "http://172.16.5.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
        "http://100.64.0.1/x",
    ],
)
async def test_private_loopback_link_local_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused, match="not a public address"):
        await check_url(url)


async def test_a_public_address_passes_and_an_allowed_network_opens_a_private_one() -> None:
    public = await check_url("https://8.8.8.8:8443/data.jsonl")
    assert (public.address, public.port, public.host) == ("8.8.8.8", 8443, "8.8.8.8")
    mirror = await check_url("http://10.20.0.5/data.jsonl", allowed_networks=["10.20.0.0/16"])
    assert mirror.address == "10.20.0.5"
    with pytest.raises(EgressRefused):
        await check_url("http://10.21.0.5/data.jsonl", allowed_networks=["10.20.0.0/16"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://x/", "only http and https"),
        ("http:///x", "no host"),
        ("http://a:b@8.8.8.8/", "credentials"),
    ],
)
async def test_other_schemes_and_urls_with_credentials_are_refused(url: str, reason: str) -> None:
    with pytest.raises(EgressRefused, match=reason):
        await check_url(url)


def test_a_request_goes_to_the_checked_address_with_the_host_name_kept_for_host_and_tls() -> None:
    target = Target(
        url="https://data.example.org/a/b.jsonl?x=1",
        scheme="https",
        host="data.example.org",
        port=443,
        address="93.184.216.34",
    )
    url, headers, extensions = _pinned(target)
    assert url == "https://93.184.216.34/a/b.jsonl?x=1"
    assert headers == {"host": "data.example.org"} and extensions == {"sni_hostname": "data.example.org"}
    six = Target(url="http://h:8080/x", scheme="http", host="h", port=8080, address="2001:db8::1")
    assert _pinned(six)[:2] == ("http://[2001:db8::1]:8080/x", {"host": "h:8080"})


class _Redirecting(BaseHTTPRequestHandler):
    """/start?q redirects to /data?q (the query kept, as WebHDFS's NameNode does); /data echoes it."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/start":
            self.send_response(307)
            self.send_header("location", f"http://127.0.0.1:{self.server.server_address[1]}/data?{query}")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status, body = (200, query.encode()) if path == "/data" else (404, b"no such file")
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def loopback() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_a_redirect_keeps_its_query_and_an_error_status_is_told(loopback: str) -> None:
    allowed = ["127.0.0.0/8"]
    async with open_stream(f"{loopback}/start?op=OPEN&user.name=forge", allowed_networks=allowed) as response:
        assert await response.aread() == b"op=OPEN&user.name=forge"
    with pytest.raises(EgressFailed, match="answered 404") as failed:
        async with open_stream(f"{loopback}/missing", allowed_networks=allowed):
            pass
    assert failed.value.status == 404
    with pytest.raises(EgressRefused):
        async with open_stream(f"{loopback}/start?x=1"):  # loopback is not allowed by default
            pass
