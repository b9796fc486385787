"""ResolveRunnerConfig without gRPC: everything an agent runner reads besides its LLM — mode,
Temporal, backend, sandbox, Redis — through the same kind of cascade as the LLM settings:
the runner's own environment variables (each secret also as `*_FILE`) > the config file's
`<mode>.runner` section > its `runner` section > the mode's defaults, with the origin of every
value.

A problem in these settings never stops the server (an LLM-only deployment keeps working): it
is reported at startup and answered FAILED_PRECONDITION, every missing cloud value at once.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from . import files, network
from .cascade import secret_digest
from .catalog import MODES, key_hint
from .config_file import LoadedFile
from .domain import ConfigError, Origin, Reason, Source, Value, Violation
from .parsing import control_character

SECRET_FILE_LIMIT: Final = 64 * 1024
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_HOSTPORT: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
_HOST: Final = re.compile(r"\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9._-]{1,253}")
_NAME: Final = re.compile(r"[A-Za-z0-9._/:-]{1,255}")
SANDBOX_TYPES: Final = ("daytona", "filesystem")
REQUIRED: Final = object()  # a default that says "cloud mode needs this set"


@dataclass(frozen=True, slots=True)
class Field:
    path: str  # "temporal.address"
    variable: str
    kind: str  # hostport, host, port, count, name, path, choice, secret
    defaults: Mapping[str, Any]  # mode → default (REQUIRED, or None: unset)
    secret: bool = False

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


def _both(value: Any) -> Mapping[str, Any]:
    return {"local": value, "cloud": value}


FIELDS: Final = (
    Field("temporal.address", "TEMPORAL_SERVICE_ADDRESS", "hostport",
          {"local": "localhost:7233", "cloud": REQUIRED}),
    Field("temporal.namespace", "TEMPORAL_NAMESPACE", "name",
          {"local": "default", "cloud": REQUIRED}),
    Field("temporal.task_queue", "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", "name",
          _both("agent_execution_runner")),
    Field("temporal.max_concurrency", "TEMPORAL_MAX_CONCURRENCY", "count", _both(10)),
    Field("backend.endpoint", "STIGMER_BACKEND_ENDPOINT", "hostport",
          {"local": "localhost:50051", "cloud": REQUIRED}),
    Field("backend.api_key", "STIGMER_API_KEY", "secret",
          {"local": "dummy-local-key", "cloud": REQUIRED}, secret=True),
    Field("sandbox.type", "SANDBOX_TYPE", "choice", {"local": "filesystem", "cloud": "daytona"}),
    Field("sandbox.root_dir", "SANDBOX_ROOT_DIR", "path", _both("./workspace")),
    Field("sandbox.snapshot_id", "DAYTONA_DEV_TOOLS_SNAPSHOT_ID", "name", _both(None)),
    Field("sandbox.daytona_api_key", "DAYTONA_API_KEY", "secret", _both(None), secret=True),
    Field("redis.host", "REDIS_HOST", "host", {"local": None, "cloud": REQUIRED}),
    Field("redis.port", "REDIS_PORT", "port", _both(6379)),
    Field("redis.password", "REDIS_PASSWORD", "secret", _both(None), secret=True),
)
BY_PATH: Final = {f.path: f for f in FIELDS}
ENDPOINTS: Final = ("temporal.address", "backend.endpoint", "redis.host")


def environment_variables() -> tuple[str, ...]:
    names = [f.variable for f in FIELDS] + [f"{f.variable}_FILE" for f in FIELDS if f.secret]
    return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class RunnerSources:
    """The runner settings the server knows, read with the LLM sources: by path, the values
    of the environment and of each config file section, and what could not be parsed."""

    env: Mapping[str, Value]
    file_modes: Mapping[str, Mapping[str, Value]]
    file_common: Mapping[str, Value]
    problems: tuple[Violation, ...]


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


def load(environ: Mapping[str, str], loaded: LoadedFile | None) -> RunnerSources:
    problems: list[Violation] = []
    env: dict[str, Value] = {}
    for spec in FIELDS:
        if (value := _env_value(spec, environ, problems)) is not None:
            env[spec.path] = value
    common: dict[str, Value] = {}
    modes: dict[str, dict[str, Value]] = {mode: {} for mode in MODES}
    if loaded is not None:
        content = loaded.content
        common = _section(loaded.display, "runner", getattr(content, "runner", None), problems)
        for mode in MODES:
            section = getattr(content, mode)
            modes[mode] = _section(loaded.display, f"{mode}.runner",
                                   getattr(section, "runner", None) if section else None,
                                   problems)
    return RunnerSources(env, modes, common, tuple(problems))


def resolve(sources: RunnerSources, mode: str, mode_origin: Origin, session_id: str = "",
            network_name: str = network.HOST,
            container_host: str = network.DEFAULT_CONTAINER_HOST, *,
            revision_key: bytes) -> RunnerResolution:
    """The runner configuration for `mode`; raises ConfigError listing every problem (the
    request's own first: they are the caller's to fix)."""
    request_problems = _session_problems(session_id)
    if request_problems:
        raise ConfigError(request_problems)
    problems = list(sources.problems)
    values: dict[str, Any] = {}
    origins = [mode_origin]
    warnings: list[str] = []
    for spec in FIELDS:
        chosen = (sources.env.get(spec.path) or sources.file_modes[mode].get(spec.path)
                  or sources.file_common.get(spec.path))
        if chosen is not None:
            values[spec.path] = chosen.value
            origins.append(Origin(spec.path, chosen.source, chosen.detail))
            continue
        default = spec.defaults[mode]
        if default is REQUIRED:
            problems.append(_missing(spec, mode))
            continue
        values[spec.path] = default
        detail = f"{mode} mode default" if default is not None else "not set"
        origins.append(Origin(spec.path, Source.DEFAULT, detail))
    if values.get("sandbox.type") == "daytona" and not values.get("sandbox.daytona_api_key"):
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


def _missing(spec: Field, mode: str) -> Violation:
    how = f"set {spec.variable}" + (f" (or {spec.variable}_FILE)" if spec.secret else "")
    return Violation(spec.path, Reason.REQUIRED_VALUE_MISSING,
                     f"{spec.path} is required in {mode} mode; {how}, or {mode}.runner."
                     f"{spec.path} in the config file", Source.DEFAULT, spec.variable)


def _session_problems(session_id: str) -> list[Violation]:
    if not session_id or (SESSION_ID.fullmatch(session_id) and session_id not in (".", "..")
                          and ".." not in session_id):
        return []
    return [Violation("session_id", Reason.INVALID_SESSION_ID,
                      "session_id must be 1–128 letters, digits, '.', '_' or '-', with no path "
                      "separator and no '..' (it names a folder under the sandbox root)",
                      Source.REQUEST, "session_id")]


# -- parsing one value ------------------------------------------------------------------------

def _env_value(spec: Field, environ: Mapping[str, str], problems: list[Violation],
               ) -> Value | None:
    raw = environ.get(spec.variable, "")
    file_variable = f"{spec.variable}_FILE"
    path = environ.get(file_variable, "") if spec.secret else ""
    if raw and path:
        problems.append(Violation(spec.path, Reason.CONFLICTING_SETTINGS,
                                  f"{spec.variable} and {file_variable} are both set; keep "
                                  "only one of them", Source.ENV, spec.variable))
        return None
    if path:
        try:
            text = files.read_text(path, limit=SECRET_FILE_LIMIT)
        except files.FileProblem as exc:
            problems.append(Violation(spec.path, Reason.SECRET_FILE_UNREADABLE,
                                      f"{file_variable}: {exc}", Source.ENV, file_variable))
            return None
        return _parsed(spec, text.removesuffix("\n").removesuffix("\r"), Source.ENV,
                       file_variable, f"{file_variable} ({path})", problems)
    if not raw:
        return None
    return _parsed(spec, raw, Source.ENV, spec.variable, spec.variable, problems)


def _section(shown: str, prefix: str, section: Any, problems: list[Violation],
             ) -> dict[str, Value]:
    found: dict[str, Value] = {}
    if section is None:
        return found
    for spec in FIELDS:
        part = getattr(section, spec.section, None)
        raw = getattr(part, spec.key, None) if part is not None else None
        if raw is None:
            continue
        subject = f"{shown}: {prefix}.{spec.path}"
        if (value := _parsed(spec, raw, Source.FILE, subject, subject, problems)) is not None:
            found[spec.path] = value
    return found


def _parsed(spec: Field, raw: Any, source: Source, subject: str, detail: str,
            problems: list[Violation]) -> Value | None:
    try:
        value = _parse(spec, raw)
    except ValueError as exc:
        shown_value = "" if spec.secret else f" {str(raw)[:64]!r}"
        problems.append(Violation(spec.path, Reason.INVALID_VALUE,
                                  f"{subject}:{shown_value} {exc}", source, subject))
        return None
    return Value(value, source, detail, subject)


def _parse(spec: Field, raw: Any) -> Any:
    if spec.kind in ("count", "port"):
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,6}", text):
            raise ValueError("is not a plain whole number")
        number = int(text)
        top = 65535 if spec.kind == "port" else 10_000
        if not 1 <= number <= top:
            raise ValueError(f"must be between 1 and {top}")
        return number
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    if found := control_character(raw):
        raise ValueError(f"contains a control character ({found[1]} at position {found[0]})")
    if spec.kind == "secret":
        if not raw or not raw.isascii() or not raw.isprintable() or " " in raw or len(raw) > 4096:
            raise ValueError("must be one line of printable ASCII without spaces")
        return raw
    if spec.kind == "hostport":
        match = _HOSTPORT.fullmatch(raw)
        if not match or not 1 <= int(match.group(2)) <= 65535:
            raise ValueError("is not HOST:PORT, e.g. localhost:7233")
        return raw
    if spec.kind == "host":
        if not _HOST.fullmatch(raw):
            raise ValueError("is not a host name or address")
        return raw.strip("[]")
    if spec.kind == "choice":
        if raw not in SANDBOX_TYPES:
            raise ValueError(f"is not one of: {', '.join(SANDBOX_TYPES)}")
        return raw
    if spec.kind == "path":
        if not raw or len(raw) > 4096:
            raise ValueError("must be a folder path")
        return raw.rstrip("/") or "/"
    if not _NAME.fullmatch(raw):
        raise ValueError("must be 1–255 letters, digits or . _ / : -")
    return raw
