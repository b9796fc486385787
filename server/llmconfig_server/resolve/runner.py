"""ResolveRunnerConfig without gRPC: everything an agent runner reads besides its LLM — mode,
Temporal, backend, sandbox, Redis, and the execution settings Stigmer's daemon passes to every
runner — from the same layers as the LLM settings (sources.py): the runner's own environment
variables (each secret also as `*_FILE`) > llmconfig's own file (`<mode>.runner`, then
`runner`) > Stigmer's file (`backend.local.temporal`, `backend.local.execution`) > the mode's
defaults, with the origin of every value. The fields are data (runner_fields.py).

A problem in these settings never stops the server (an LLM-only deployment keeps working): it
is reported at startup and answered FAILED_PRECONDITION, every problem at once.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from llmconfig_server.resolve import network
from llmconfig_server.resolve.cascade import secret_digest
from llmconfig_server.resolve.catalog import key_hint
from llmconfig_server.resolve.domain import ConfigError, Layer, Origin, Reason, Source, Violation
from llmconfig_server.resolve.runner_fields import (
    BY_PATH,
    FIELDS,
    PATHS,
    REQUIRED,
    RunnerField,
    environment_variables,
)

__all__ = ["RunnerResolution", "environment_variables", "resolve"]

SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
ENDPOINTS: Final = ("temporal.address", "backend.endpoint", "redis.host")


@dataclass(frozen=True, slots=True)
class RunnerResolution:
    mode: str
    values: Mapping[str, Any]  # path → value; redis.enabled too; secrets in clear
    origins: tuple[Origin, ...]
    warnings: tuple[str, ...]
    revision: str

    def hint(self, path: str) -> str:
        value = self.values.get(path)
        return key_hint(value) if value else ""


def resolve(layers: Sequence[Layer], mode: str, mode_origin: Origin, session_id: str = "",
            network_name: str = network.HOST,
            container_host: str = network.DEFAULT_CONTAINER_HOST, *,
            revision_key: bytes) -> RunnerResolution:
    """The runner configuration for `mode` from `layers` (highest first, as
    ServerSources.layers_for gives them); raises ConfigError listing every problem (the
    request's own first: they are the caller's to fix)."""
    request_problems = _session_problems(session_id)
    if request_problems:
        raise ConfigError(request_problems)
    problems = list(dict.fromkeys(p for layer in layers for p in layer.problems_for(PATHS)))
    failed = {p.field for p in problems}
    values: dict[str, Any] = {}
    origins = [mode_origin]
    warnings: list[str] = [w for layer in layers for w in layer.runner_warnings]
    for spec in FIELDS:
        chosen = next((layer.generic[spec.path] for layer in layers
                       if spec.path in layer.generic), None)
        if chosen is not None:
            values[spec.path] = chosen.value
            origins.append(Origin(spec.path, chosen.source, chosen.detail))
            continue
        default = spec.defaults[mode]
        if default is REQUIRED:
            if spec.path not in failed:
                problems.append(_missing(spec, mode))
            continue
        values[spec.path] = default
        detail = f"{mode} mode default" if default is not None else "not set"
        if spec.path == "temporal.managed":
            detail += " (the daemon runs Temporal)" if default else " (an external Temporal)"
        origins.append(Origin(spec.path, Source.DEFAULT, detail))
    if mode == "local" and values.get("sandbox.type") == "daytona":
        _local_sandbox_is_the_filesystem(values, origins, warnings)
    if values.get("sandbox.type") == "daytona" and not values.get("sandbox.daytona_api_key") \
            and "sandbox.daytona_api_key" not in failed:
        problems.append(Violation(
            "sandbox.daytona_api_key", Reason.REQUIRED_VALUE_MISSING,
            "sandbox.daytona_api_key is required for the daytona sandbox; set DAYTONA_API_KEY "
            "(or DAYTONA_API_KEY_FILE), or SANDBOX_TYPE=filesystem", Source.DEFAULT,
            "DAYTONA_API_KEY"))
    if problems:
        raise ConfigError(problems)
    _shape_sandbox(values, origins, session_id)
    _shape_redis(values, origins, warnings, mode)
    resolution = RunnerResolution(mode, values, tuple(origins), tuple(warnings), "")
    if network_name == network.DOCKER:
        resolution = _for_container(resolution, container_host)
    return replace(resolution, revision=_revision(resolution, revision_key))


def _local_sandbox_is_the_filesystem(values: dict[str, Any], origins: list[Origin],
                                     warnings: list[str]) -> None:
    """Stigmer's runner never uses Daytona in local mode (worker/config.py: local mode's
    sandbox is the filesystem), so a `daytona` there is ignored, not a missing Daytona key."""
    given = next(o.detail for o in origins if o.field == "sandbox.type")
    values["sandbox.type"] = "filesystem"
    _set_origin(origins, "sandbox.type", Source.DEFAULT,
                f"local mode: the filesystem sandbox (daytona from {given} is ignored)")
    warnings.append(f"sandbox.type daytona (from {given}) is ignored in local mode: Stigmer's "
                    "runner uses the filesystem sandbox locally; unset it, or use cloud mode "
                    "for Daytona")


def _shape_sandbox(values: dict[str, Any], origins: list[Origin], session_id: str) -> None:
    if values["sandbox.type"] != "filesystem":
        values["sandbox.root_dir"] = ""
        _set_origin(origins, "sandbox.root_dir", Source.DEFAULT, "not used by daytona")
        return
    if session_id:
        values["sandbox.root_dir"] = posixpath.join(values["sandbox.root_dir"], "sessions",
                                                    session_id)
        _amend_origin(origins, "sandbox.root_dir", f"; /sessions/{session_id} for the request's "
                                                   "session_id")


def _shape_redis(values: dict[str, Any], origins: list[Origin], warnings: list[str],
                 mode: str) -> None:
    enabled = mode == "cloud"
    values["redis.enabled"] = enabled
    origins.append(Origin("redis.enabled", Source.DEFAULT,
                          f"{mode} mode default" + ("" if enabled else
                                                    " (state goes through the daemon)")))
    if not enabled:
        given = [o.detail for o in origins if o.field.startswith("redis.")
                 and o.source is not Source.DEFAULT]
        if given:
            warnings.append(f"Redis is not used in local mode; ignoring {', '.join(given)}")
        for path in ("redis.host", "redis.password"):
            values[path] = values.get(path) or ""


def _for_container(resolution: RunnerResolution, container_host: str) -> RunnerResolution:
    values = dict(resolution.values)
    origins = list(resolution.origins)
    for path in ENDPOINTS:
        original = values.get(path)
        if not original:
            continue
        if (seen := network.hostport_for_container(str(original), container_host)) is None:
            continue
        values[path] = seen
        _amend_origin(origins, path, network.note(str(original), seen))
    return replace(resolution, values=values, origins=tuple(origins))


def _revision(resolution: RunnerResolution, revision_key: bytes) -> str:
    parts = [resolution.mode]
    for path in sorted(resolution.values):
        value = resolution.values[path]
        if path in BY_PATH and BY_PATH[path].secret and value:
            value = secret_digest(str(value), revision_key)  # keyed: see cascade.revision_of
        parts.append(f"{path}={value}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def _set_origin(origins: list[Origin], path: str, source: Source, detail: str) -> None:
    origins[:] = [Origin(path, source, detail) if o.field == path else o for o in origins]


def _amend_origin(origins: list[Origin], path: str, extra: str) -> None:
    origins[:] = [Origin(o.field, o.source, o.detail + extra) if o.field == path else o
                  for o in origins]


def _missing(spec: RunnerField, mode: str) -> Violation:
    variable = spec.variable or spec.path
    how = f"set {variable}" + (f" (or {variable}_FILE)" if spec.secret else "")
    return Violation(spec.path, Reason.REQUIRED_VALUE_MISSING,
                     f"{spec.path} is required in {mode} mode; {how}, or {mode}.runner."
                     f"{spec.path} in llmconfig's config file", Source.DEFAULT, variable)


def _session_problems(session_id: str) -> list[Violation]:
    if not session_id or (SESSION_ID.fullmatch(session_id) and session_id not in (".", "..")
                          and ".." not in session_id):
        return []
    return [Violation("session_id", Reason.INVALID_SESSION_ID,
                      "session_id must be 1–128 letters, digits, '.', '_' or '-', with no path "
                      "separator and no '..' (it names a folder under the sandbox root)",
                      Source.REQUEST, "session_id")]
