"""Outbound HTTP(S) to addresses users give (imports from a link), without server-side request forgery.

A URL is fetched only if its scheme is http or https and every address its host resolves to is a
public (globally routable) one, or lies in a network an administrator allowed (`allowed_networks`:
a lab's mirror, the tests' loopback server). Loopback, private, link-local (cloud metadata at
169.254.169.254), multicast and reserved addresses are refused otherwise. The request then goes to the
address that was checked (the host name kept for the Host header and TLS), so a second DNS answer
cannot swap it for another; redirects are followed by hand, each target checked the same way.

    async with open_stream(url, allowed_networks=settings.import_allowed_networks) as response:
        async for chunk in response.aiter_bytes(): ...
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 5
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(ValueError):
    """The URL may not be fetched: its scheme, or an address its host resolves to."""


class EgressFailed(RuntimeError):
    """The URL could not be fetched: unreachable, a timeout, an HTTP error status (`status`)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    address: str
    """The checked address the request goes to."""


def networks(cidrs: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def _allowed(address: str, allowed: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in network for network in allowed if network.version == ip.version):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url(url: str, allowed_networks: Sequence[str] = ()) -> Target:
    """Where `url` may be fetched from, or EgressRefused saying why not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError as error:
        raise EgressRefused(f"the URL cannot be parsed ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise EgressRefused(f"only http and https URLs can be fetched, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise EgressRefused("the URL has no host")
    if parts.username or parts.password:
        raise EgressRefused("credentials in the URL are not accepted")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise EgressFailed(f"the host {parts.hostname!r} cannot be resolved ({error.strerror})") from None
    except (UnicodeError, ValueError):  # an over-long or malformed label (IDNA), a NUL ...
        raise EgressRefused("the URL's host is not a valid host name") from None
    addresses = sorted({str(info[4][0]) for info in found})
    allowed = networks(allowed_networks)
    refused = [a for a in addresses if not _allowed(a, allowed)]
    if refused or not addresses:
        raise EgressRefused(
            f"{parts.hostname} resolves to {', '.join(refused) or 'nothing'}: not a public address "
            "(loopback, private, link-local and reserved addresses are refused unless an administrator "
            "allows their network)"
        )
    return Target(url=url, scheme=parts.scheme, host=parts.hostname, port=port, address=addresses[0])


def _pinned(target: Target) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with the checked address in place of the host, the Host header and the TLS name."""
    parts = urlsplit(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    default = 443 if target.scheme == "https" else 80
    netloc = address if target.port == default else f"{address}:{target.port}"
    host = target.host if target.port == default else f"{target.host}:{target.port}"
    pinned = parts._replace(netloc=netloc).geturl()
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return pinned, {"host": host}, extensions


@asynccontextmanager
async def open_stream(
    url: str,
    *,
    allowed_networks: Sequence[str] = (),
    timeout_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """GET `url` (and its redirects, each checked), yielding the final 2xx response to stream."""
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            target = await check_url(current, allowed_networks)
            pinned, host, extensions = _pinned(target)
            request = client.build_request(
                "GET", pinned, headers={**(headers or {}), **host}, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise EgressFailed(
                    f"{target.host} could not be reached: {error or type(error).__name__}"
                ) from None
            try:
                if response.is_redirect and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise EgressFailed(
                        f"{target.host} answered {response.status_code} {response.reason_phrase}",
                        status=response.status_code,
                    )
                yield response
                return
            finally:
                await response.aclose()
        raise EgressFailed(f"more than {MAX_REDIRECTS} redirects")
