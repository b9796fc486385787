"""The runner's fields as data: one row per field — its path, the runner's own variable, the
grammar its value follows and the mode defaults. Sources read every row the same way (the
environment with its `*_FILE` secrets, each config file's keys), so a new field is one row here
and gets parsing, origins, validation and reload from the machinery the LLM settings use.

Pure data and parsing: no environment access, no gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from llmconfig_server.resolve import parsing
from llmconfig_server.resolve.domain import Source, Value

REQUIRED: Final = object()  # a default that says "cloud mode needs this set"
SANDBOX_TYPES: Final = ("daytona", "filesystem")
EXECUTION_MODES: Final = ("local", "sandbox", "auto")  # Stigmer's runner's ExecutionMode
# The daemon's gRPC port (Stigmer's DaemonPort, hard-coded): runners report to it.
DAEMON_ENDPOINT: Final = "localhost:7234"
SANDBOX_IMAGE: Final = "ghcr.io/stigmer/agent-sandbox-basic:latest"
# Docker image references: registry/name:tag or @sha256:digest.
_IMAGE_CHARACTERS: Final = "A-Za-z0-9._/:@-"
_NAME_CHARACTERS: Final = "A-Za-z0-9._/:-"
_INT32_MAX: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RunnerField:
    path: str  # "temporal.address"
    # The runner's own variable; None for a value derived from others (temporal.managed).
    variable: str | None
    kind: str  # hostport, host, port, count, seconds, bool, choice, name, image, path, secret
    defaults: Mapping[str, Any]  # mode → default (REQUIRED, or None: unset)
    secret: bool = False
    choices: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]

    @property
    def python_type(self) -> type:
        """What a YAML file holds for it (the config file schema is built from this)."""
        return {"port": int, "count": int, "seconds": int, "bool": bool}.get(self.kind, str)


def _both(value: Any) -> Mapping[str, Any]:
    return MappingProxyType({"local": value, "cloud": value})


def _modes(local: Any, cloud: Any) -> Mapping[str, Any]:
    return MappingProxyType({"local": local, "cloud": cloud})


FIELDS: Final = (
    RunnerField("temporal.address", "TEMPORAL_SERVICE_ADDRESS", "hostport",
                _modes("localhost:7233", REQUIRED)),
    # True when the daemon runs Temporal itself: no address was given (Stigmer's rule).
    RunnerField("temporal.managed", None, "bool", _modes(True, False)),
    RunnerField("temporal.namespace", "TEMPORAL_NAMESPACE", "name",
                _modes("default", REQUIRED)),
    RunnerField("temporal.task_queue", "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", "name",
                _both("agent_execution_runner")),
    RunnerField("temporal.max_concurrency", "TEMPORAL_MAX_CONCURRENCY", "count", _both(10)),
    RunnerField("backend.endpoint", "STIGMER_BACKEND_ENDPOINT", "hostport",
                _modes(DAEMON_ENDPOINT, REQUIRED)),
    RunnerField("backend.api_key", "STIGMER_API_KEY", "secret",
                _modes("dummy-local-key", REQUIRED), secret=True),
    RunnerField("sandbox.type", "SANDBOX_TYPE", "choice", _modes("filesystem", "daytona"),
                choices=SANDBOX_TYPES),
    RunnerField("sandbox.root_dir", "SANDBOX_ROOT_DIR", "path", _both("./workspace")),
    RunnerField("sandbox.snapshot_id", "DAYTONA_DEV_TOOLS_SNAPSHOT_ID", "name", _both(None)),
    RunnerField("sandbox.daytona_api_key", "DAYTONA_API_KEY", "secret", _both(None),
                secret=True),
    RunnerField("redis.host", "REDIS_HOST", "host", _modes(None, REQUIRED)),
    RunnerField("redis.port", "REDIS_PORT", "port", _both(6379)),
    RunnerField("redis.password", "REDIS_PASSWORD", "secret", _both(None), secret=True),
    # What Stigmer's daemon resolves and passes to every runner container (config.go).
    RunnerField("execution.mode", "STIGMER_EXECUTION_MODE", "choice", _both("local"),
                choices=EXECUTION_MODES),
    RunnerField("execution.sandbox_image", "STIGMER_SANDBOX_IMAGE", "image",
                _both(SANDBOX_IMAGE)),
    RunnerField("execution.sandbox_auto_pull", "STIGMER_SANDBOX_AUTO_PULL", "bool", _both(True)),
    RunnerField("execution.sandbox_cleanup", "STIGMER_SANDBOX_CLEANUP", "bool", _both(True)),
    RunnerField("execution.sandbox_ttl_seconds", "STIGMER_SANDBOX_TTL", "seconds", _both(3600)),
)
BY_PATH: Final = MappingProxyType({f.path: f for f in FIELDS})
PATHS: Final = frozenset(BY_PATH)
SECTIONS: Final = tuple(dict.fromkeys(f.section for f in FIELDS))


def environment_variables() -> tuple[str, ...]:
    names = [f.variable for f in FIELDS if f.variable]
    names += [f"{f.variable}_FILE" for f in FIELDS if f.secret and f.variable]
    return tuple(sorted(names))


def parse(spec: RunnerField, raw: Any, source: Source, detail: str, subject: str) -> Value:
    """`raw` for field `spec`, or ParseError naming `subject`; the one grammar of parsing.py."""
    name = spec.path
    value: Any
    if spec.kind == "hostport":
        example = "localhost:7233" if spec.section == "temporal" else DAEMON_ENDPOINT
        value = parsing.parse_hostport(raw, source, subject, name=name, example=example)
    elif spec.kind == "host":
        value = parsing.parse_host(raw, source, subject, name=name)
    elif spec.kind == "port":
        value = parsing.parse_integer(raw, source, subject, name=name, minimum=1, maximum=65535,
                                      rule="a port between 1 and 65535")
    elif spec.kind == "count":
        value = parsing.parse_integer(raw, source, subject, name=name, minimum=1,
                                      maximum=10_000, rule="a whole number between 1 and 10000")
    elif spec.kind == "seconds":
        value = parsing.parse_integer(raw, source, subject, name=name, minimum=0,
                                      maximum=_INT32_MAX,
                                      rule="a whole number of seconds, 0 or more, such as 3600")
    elif spec.kind == "bool":
        value = parsing.parse_boolean(raw, source, subject, name=name)
    elif spec.kind == "choice":
        value = parsing.parse_choice(raw, spec.choices, source, subject, name=name)
    elif spec.kind == "path":
        value = parsing.parse_path(raw, source, subject, name=name)
    elif spec.kind == "secret":
        value = parsing.parse_secret(raw, source, subject, name=name, what=name)
    elif spec.kind == "image":
        value = parsing.parse_word(raw, source, subject, name=name, allowed=_IMAGE_CHARACTERS,
                                   limit=512)
    else:
        value = parsing.parse_word(raw, source, subject, name=name, allowed=_NAME_CHARACTERS)
    return Value(value, source, detail, subject)
