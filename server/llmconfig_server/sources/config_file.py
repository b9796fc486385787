"""llmconfig's own YAML config file: where it is looked for, what it may contain, its errors.

```yaml
mode: local            # optional: the server's mode
llm:                   # common to both modes
  provider: ollama
  model: qwen2.5-coder:7b
local:
  llm: {base_url: "http://localhost:11434"}
cloud:
  llm: {model: claude-sonnet-4.5}
```

It lives apart from Stigmer's own `~/.stigmer/config.yaml` (stigmer_file.py), which the
Stigmer CLI rewrites from its Go struct on every save, dropping any key it does not know.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from llmconfig_server.resolve import parsing
from llmconfig_server.resolve.domain import Reason, Source, Violation
from llmconfig_server.resolve.parsing import control_character, shorten_path
from llmconfig_server.support import files
from llmconfig_server.support.files import FileProblem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from llmconfig_server.sources.config_schema import ConfigFileModel

CONFIG_ENV: Final = "STIGMER_LLMCONFIG_CONFIG"
# Wave 1's name: still read (below CONFIG_ENV), with a warning.
DEPRECATED_CONFIG_ENV: Final = "STIGMER_CONFIG"
OWN_DEFAULT: Final = Path(".stigmer") / "llmconfig.yaml"
STIGMER_DEFAULT: Final = Path(".stigmer") / "config.yaml"
# Config files are a few hundred bytes; a megabyte is a runaway file, refused before parsing.
CONFIG_FILE_LIMIT: Final = 1024 * 1024
_MAX_REPORTED: Final = 5
# api_key, an OpenAI-style `key`, auth_token, password, client_secret… (not max_tokens).
_SECRET_KEY: Final = re.compile(
    r"(?i)(?:^|[_-])(?:key|token|password|passwd|secret|credentials?)$")
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Top-level keys: each file's own, so a file in the other's format is recognised.
OWN_KEYS: Final = frozenset({"mode", "llm", "runner", "local", "cloud"})
STIGMER_KEYS: Final = frozenset({"backend", "context"})
_NAMED_BY: Final = ("--config", CONFIG_ENV, DEPRECATED_CONFIG_ENV)


@dataclass(frozen=True, slots=True)
class LoadedFile:
    path: Path
    display: str  # ~/.stigmer/llmconfig.yaml, as a person would write it
    content: ConfigFileModel


@dataclass(frozen=True, slots=True)
class Document:
    """A config file read and parsed as YAML, not yet checked against a schema."""

    path: Path
    display: str
    named_by: str
    data: dict[str, Any]
    marks: Any  # safe_yaml.Marks

    @property
    def by(self) -> str:
        """` (named by --config)` for a file someone named, else empty."""
        return f" (named by {self.named_by})" if self.named_by in _NAMED_BY else ""

    def is_stigmers(self) -> bool:
        """Written in Stigmer's schema (backend:, context:), not in llmconfig's own."""
        return bool(STIGMER_KEYS & self.data.keys())

    def is_llmconfigs(self) -> bool:
        """Written in llmconfig's own schema (llm:, local:, …) and not in Stigmer's."""
        return bool(OWN_KEYS & self.data.keys()) and not self.is_stigmers()

    def where(self, path: tuple[str, ...]) -> str:
        """`:line:column` of the value at `path`, when known."""
        found = self.marks.get(path)
        return f":{found[0]}:{found[1]}" if found else ""


class ConfigFileError(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(v.message for v in violations))
        self.violations = violations


def display_path(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class Found:
    """Where llmconfig's own file is, what named it, and notes about deprecated names."""

    path: Path | None
    named_by: str
    notes: tuple[str, ...] = ()


def locate(explicit: str | None, environ: Mapping[str, str], cwd: Path, home: Path) -> Found:
    """llmconfig's own file: --config, else STIGMER_LLMCONFIG_CONFIG, else STIGMER_CONFIG
    (deprecated), else ~/.stigmer/llmconfig.yaml. A file named explicitly must exist; the
    default is optional. (The deprecated ./.stigmer/config.yaml and an old-format
    ~/.stigmer/config.yaml are sources.py's to find: only their content tells.)"""
    if explicit:
        return Found(_named(explicit, cwd, "--config"), "--config")
    current = environ.get(CONFIG_ENV, "")
    old = environ.get(DEPRECATED_CONFIG_ENV, "")
    if old.strip() and current.strip():
        note = (f"{DEPRECATED_CONFIG_ENV} is deprecated and ignored because {CONFIG_ENV} is "
                "set")
        return Found(_named(current, cwd, CONFIG_ENV), CONFIG_ENV, (note,))
    if current.strip():
        return Found(_named(current, cwd, CONFIG_ENV), CONFIG_ENV)
    if old.strip():
        note = f"{DEPRECATED_CONFIG_ENV} is deprecated; rename it to {CONFIG_ENV}"
        return Found(_named(old, cwd, DEPRECATED_CONFIG_ENV), DEPRECATED_CONFIG_ENV, (note,))
    default = home / OWN_DEFAULT
    # lexists(), not is_file(): a FIFO or a directory there is reported, not skipped.
    return Found(default if os.path.lexists(default) else None, "found")


def _named(name: str, cwd: Path, by: str) -> Path:
    if found := control_character(name):
        # Refused before it is shown anywhere: a newline in a path would forge a log line.
        raise ConfigFileError([Violation(
            "config", Reason.CONFIG_FILE_INVALID,
            f"{by}: the file name contains a control character ({found[1]} at position "
            f"{found[0]})", Source.FILE, by)])
    path = Path(name).expanduser()
    return path if path.is_absolute() else cwd / path


def read(path: Path, home: Path, named_by: str) -> Document:
    """The file's YAML document (a mapping; empty when the file is), or ConfigFileError in one
    line that names the file, the line and column of a YAML mistake, and never its text."""
    from llmconfig_server.support import safe_yaml

    shown = shorten_path(display_path(path, home))
    by = f" (named by {named_by})" if named_by in _NAMED_BY else ""

    def fail(subject: str, message: str, reason: Reason = Reason.CONFIG_FILE_INVALID) -> Violation:
        return Violation("config", reason, message, Source.FILE, subject)

    try:
        text = files.read_text(path, limit=CONFIG_FILE_LIMIT)
    except FileProblem as exc:
        if not os.path.lexists(path):
            raise ConfigFileError(
                [fail(named_by, f"config file {shown}{by} does not exist",
                      Reason.CONFIG_FILE_MISSING)]
            ) from None
        problem = str(exc).replace(str(path), shown)
        raise ConfigFileError([fail(named_by if by else shown,
                                    f"config file{by}: {problem}")]) from None
    try:
        data, marks = safe_yaml.load_with_marks(text)
    except safe_yaml.YAMLProblem as exc:
        raise ConfigFileError([fail(shown, f"{shown}{exc.where}{by}: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            [fail(shown, f"{shown}{by}: the top level must be a mapping of keys (such as "
                         f"llm: or backend:); found {type(data).__name__}")]
        )
    return Document(path, shown, named_by, data, marks)


def load(path: Path, home: Path, named_by: str) -> LoadedFile:
    """Read llmconfig's own file at `path` and check it against its schema."""
    return validate(read(path, home, named_by))


def validate(document: Document) -> LoadedFile:
    # pydantic costs ~80 ms to import: only a server that has a file of its own pays for it.
    from pydantic import ValidationError

    from llmconfig_server.sources.config_schema import ConfigFileModel

    shown, by = document.display, document.by
    if document.is_stigmers():
        raise ConfigFileError([Violation(
            "config", Reason.CONFIG_FILE_INVALID,
            f"{shown}{by}: this is Stigmer's own config file (it has backend:), not "
            "llmconfig's: llmconfig reads Stigmer's file from ~/.stigmer/config.yaml by "
            "itself; name llmconfig's own file (llm:, local:, cloud:, runner:) here instead",
            Source.FILE, shown)])
    try:
        content = ConfigFileModel.model_validate(document.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=True)
        violations = [_field_violation(document, err) for err in errors[:_MAX_REPORTED]]
        if len(errors) > _MAX_REPORTED:
            violations.append(Violation(
                "config", Reason.CONFIG_FILE_INVALID,
                f"{shown}{by}: … and {len(errors) - _MAX_REPORTED} more problems", Source.FILE,
                shown))
        raise ConfigFileError(violations) from None
    return LoadedFile(document.path, shown, content)


def _field_violation(document: Document, err: Any) -> Violation:
    """What the schema refuses, said with key names and line:column only: the file may not be
    a config file at all (a path pointed at /etc/shadow), and its content must never reach a
    log line or an answer's warning. A value is described by its kind, never quoted."""
    shown, by = document.display, document.by
    loc = tuple(str(part) for part in err["loc"])
    parts = [key_shown(part) for part in err["loc"]]
    key = ".".join(parts)
    kind = err["type"]
    # An unknown key is shown where it is; a refused value where the value is.
    from llmconfig_server.support.safe_yaml import KEY

    at = document.where((*loc, KEY) if kind == "extra_forbidden" else loc)
    if kind == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(sorted(parent.model_fields)) if parent else \
            "see docs/configuration.md"
        close = difflib.get_close_matches(parts[-1], list(parent.model_fields), n=1) \
            if parent else []
        hint = f"did you mean {close[0]}? " if close else ""
        message = f"{shown}{at}{by}: {key}: unknown key ({hint}allowed here: {allowed})"
    elif kind in ("model_type", "dict_type"):
        # A section given a value (`llm: x`, or `api_key:sk-…` without its space, which YAML
        # reads as one text under `llm`): say so in the file's words, never quoting the value.
        section = _model_at(err["loc"])
        keys = f" of {', '.join(sorted(section.model_fields))}" if section else ""
        value = err.get("input")
        colon = isinstance(value, str) and re.match(r"[A-Za-z_][\w-]*:\S", value)
        message = (f"{shown}{at}{by}: {key or 'the file'}: expected a mapping (keys{keys}), got "
                   f"{_input_kind(value)}" + ("; a key needs a space after its colon "
                                              "(`key: value`)" if colon else ""))
    else:
        message = (f"{shown}{at}{by}: {key}: {err['msg'].lower()}, got "
                   f"{_input_kind(err.get('input'))}")
    return Violation(parts[-1] if parts else "config", Reason.CONFIG_FILE_INVALID, message,
                     Source.FILE, f"{shown}: {key}")


def _input_kind(value: Any) -> str:
    """What a refused value is, without quoting it."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


def key_shown(part: Any) -> str:
    """A key of the file as an error shows it: a plain name as it is; anything else (a line of
    another kind of file, a pasted secret, a megabyte, a newline) not at all (the error says
    where it is)."""
    if isinstance(part, int):
        return f"[{part}]"
    if isinstance(part, str) and _PLAIN_KEY.fullmatch(part) and not parsing.looks_like_secret(part):
        return part
    return "<a key that is not a plain name>"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    from pydantic import BaseModel

    from llmconfig_server.sources.config_schema import ConfigFileModel

    model: type[BaseModel] = ConfigFileModel
    for part in loc:
        found = model.model_fields.get(str(part))
        annotation = found.annotation if found else None
        inner = next(
            (a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)
             and issubclass(a, BaseModel)),
            None,
        )
        if inner is None:
            return None
        model = inner
    return model
