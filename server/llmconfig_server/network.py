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
from collections.abc import Iterable
from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from .domain import ConfigError, Origin, Reason, Resolution, Source, Violation

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


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


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
