"""Endpoints as the caller sees them. A runner in a Docker container on the server's host
cannot reach `localhost:11434` — inside the container that is itself — so for
`network: docker` every loopback host in a resolved endpoint becomes the server's
`--container-host` (default `host.docker.internal`), and the origin says so.

Health is always checked from the server's own view: a container's URL is mapped back to the
configured one it came from.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from llmconfig_server.resolve.domain import (
    ConfigError,
    Origin,
    Reason,
    Resolution,
    Source,
    Violation,
)

HOST: Final = "host"
DOCKER: Final = "docker"
NETWORKS: Final = (HOST, DOCKER)
DEFAULT_CONTAINER_HOST: Final = "host.docker.internal"


def parse_network(raw: str) -> str:
    """"" or "host" → "host"; "docker"; anything else is the caller's mistake."""
    if raw in ("", HOST):
        return HOST
    if raw == DOCKER:
        return DOCKER
    shown = raw[:32] + ("…" if len(raw) > 32 else "")
    raise ConfigError([Violation(
        "network", Reason.UNKNOWN_NETWORK,
        f"network {shown!r} is not known; use one of: docker, host (or leave it empty)",
        Source.REQUEST, "network")])


# The names a hosts file gives loopback (Debian's, Red Hat's and systemd's spellings); other
# names may resolve to anything, so they are not loopback (`localhost.evil` is not).
LOOPBACK_NAMES: Final = frozenset({
    "localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4",
    "localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback",
})
_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written in a URL, an address or a peer stands for, parsed as the C
    library would take it: brackets and one trailing dot dropped, IPv4-mapped IPv6 as its IPv4
    address, inet_aton's short and numeric forms (`127.1`, `0`, `0x7f000001`, `017700000001`),
    and the hosts-file names of loopback. None for any other name."""
    text = host.strip().removeprefix("[").removesuffix("]").removesuffix(".").lower()
    if text in LOOPBACK_NAMES:
        return ipaddress.ip_address("::1" if text.startswith("ip6-") or text.startswith(
            "localhost6") else "127.0.0.1")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return _inet_aton(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton(3)'s forms: 1 to 4 dot-separated numbers (decimal, 0-octal, 0x-hex), the
    last filling the remaining bytes; None when `text` is not one."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    numbers = [int(part, 16) if part[:2] in ("0x", "0X") else
               int(part, 8) if part.startswith("0") else int(part) for part in parts]
    *head, last = numbers
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def is_loopback(host: str, *, listen: bool = False) -> bool:
    """Whether `host` is this machine only — the one rule for every loopback question: a
    listener's address, a caller's peer address, an endpoint handed to a container, a probe's
    URL. An unspecified address (`0.0.0.0`, `::`, `0`) reaches this machine when connected to,
    but means every interface when listened on (`listen=True`)."""
    address = host_address(host)
    if address is None:
        return False
    return address.is_loopback or (address.is_unspecified and not listen)


def url_for_container(url: str, container_host: str) -> str | None:
    """`url` with its loopback host replaced, or None when it needs no change."""
    parts = urlsplit(url)
    if not parts.hostname or not is_loopback(parts.hostname):
        return None
    userinfo, at, _ = parts.netloc.rpartition("@")
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{container_host}{port}"))


def hostport_for_container(hostport: str, container_host: str) -> str | None:
    """`host:port` (or a bare host) with a loopback host replaced, or None."""
    if hostport.startswith("["):  # [::1]:7233
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:  # a bare host, or a bare IPv6 address
        host, port = hostport, ""
    if not is_loopback(host):
        return None
    return f"{container_host}:{port}" if port else container_host


def note(original: str, seen: str) -> str:
    return f"; for a container: {original} → {seen}"


def server_view(url: str, container_host: str, configured: Iterable[str]) -> str:
    """The configured URL that a container sees as `url`, else `url` unchanged."""
    for candidate in configured:
        if url_for_container(candidate, container_host) == url.rstrip("/"):
            return candidate
    return url


def resolution_for_container(resolution: Resolution, container_host: str) -> Resolution:
    """The LLM configuration as a container on the server's host must use it."""
    seen = {name: url_for_container(getattr(resolution, name), container_host)
            for name in ("base_url", "openai_base_url") if getattr(resolution, name)}
    changed = {name: url for name, url in seen.items() if url is not None}
    if not changed:
        return resolution
    origins = tuple(
        Origin(o.field, o.source, o.detail + note(resolution.base_url, changed["base_url"]))
        if o.field == "base_url" and "base_url" in changed else o
        for o in resolution.origins)
    listener = ("Ollama must listen beyond loopback for a container to reach it: on the host, "
                "run `OLLAMA_HOST=0.0.0.0 ollama serve`") if resolution.provider == "ollama" \
        else (f"{resolution.base_url} must accept connections from containers "
              f"({container_host}), not only from loopback")
    digest = hashlib.sha256(f"{resolution.revision}\x1f{DOCKER}\x1f{container_host}".encode())
    return replace(resolution, base_url=changed.get("base_url", resolution.base_url),
                   openai_base_url=changed.get("openai_base_url", resolution.openai_base_url),
                   origins=origins, warnings=(*resolution.warnings, listener),
                   revision=digest.hexdigest()[:12])
