"""The YAML config file: where it is looked for, what it may contain, and its errors.

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
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from . import files, parsing
from .domain import Reason, Source, Violation
from .files import FileProblem
from .parsing import control_character, shorten_path

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .config_schema import ConfigFileModel

CONFIG_ENV = "STIGMER_CONFIG"
# Config files are a few hundred bytes; a megabyte is a runaway file, refused before parsing.
CONFIG_FILE_LIMIT: Final = 1024 * 1024
_MAX_REPORTED: Final = 5
# api_key, an OpenAI-style `key`, auth_token, password, client_secret… (not max_tokens).
_SECRET_KEY: Final = re.compile(
    r"(?i)(?:^|[_-])(?:key|token|password|passwd|secret|credentials?)$")
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class LoadedFile:
    path: Path
    display: str  # ~/.stigmer/config.yaml, as a person would write it
    content: ConfigFileModel


class ConfigFileError(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(v.message for v in violations))
        self.violations = violations


def display_path(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def locate(
    explicit: str | None, environ: Mapping[str, str], cwd: Path, home: Path
) -> tuple[Path | None, str]:
    """The file to read and why: --config, else STIGMER_CONFIG, else ./.stigmer/config.yaml,
    else ~/.stigmer/config.yaml. A file named explicitly must exist; the others are optional."""
    if explicit:
        return _named(explicit, cwd, "--config")
    if (named := environ.get(CONFIG_ENV, "")).strip():
        return _named(named, cwd, CONFIG_ENV)
    for candidate in (cwd / ".stigmer" / "config.yaml", home / ".stigmer" / "config.yaml"):
        # exists(), not is_file(): a FIFO or a directory there is reported, not skipped.
        if candidate.exists():
            return candidate, "found"
    return None, "none"


def _named(name: str, cwd: Path, by: str) -> tuple[Path, str]:
    if found := control_character(name):
        # Refused before it is shown anywhere: a newline in a path would forge a log line.
        raise ConfigFileError([Violation(
            "config", Reason.CONFIG_FILE_INVALID,
            f"{by}: the file name contains a control character ({found[1]} at position "
            f"{found[0]})", Source.FILE, by)])
    path = Path(name).expanduser()
    return (path if path.is_absolute() else cwd / path), by


def load(path: Path, home: Path, named_by: str) -> LoadedFile:
    # pydantic and YAML cost ~80 ms to import: only a server that has a file pays for them.
    from pydantic import ValidationError

    from . import safe_yaml
    from .config_schema import ConfigFileModel

    shown = shorten_path(display_path(path, home))
    by = f" (named by {named_by})" if named_by in ("--config", CONFIG_ENV) else ""

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
    positions: safe_yaml.Positions = {}
    try:
        data: Any = safe_yaml.load(text, positions)
    except safe_yaml.YAMLProblem as exc:
        raise ConfigFileError([fail(shown, f"{shown}{exc.where}{by}: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            [fail(shown, f"{shown}{by}: the top level must be a mapping with keys such as llm:, "
                         f"local:, cloud:; found {type(data).__name__}")]
        )
    try:
        content = ConfigFileModel.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=True)
        violations = [_field_violation(shown, by, err, positions)
                      for err in errors[:_MAX_REPORTED]]
        if len(errors) > _MAX_REPORTED:
            violations.append(fail(shown, f"{shown}{by}: … and {len(errors) - _MAX_REPORTED} more "
                                          "problems"))
        raise ConfigFileError(violations) from None
    return LoadedFile(path, shown, content)


def _field_violation(shown: str, by: str, err: Any, positions: Mapping[tuple[str, ...], str],
                     ) -> Violation:
    """What the schema refuses, said with key names and line:column only: the file may not be
    a config file at all (a path pointed at /etc/shadow), and its content must never reach a
    log line or an answer's warning. A value is described by its kind, never quoted."""
    loc = tuple(str(part) for part in err["loc"])
    parts = [_key_shown(part) for part in err["loc"]]
    key = ".".join(parts)
    kind = err["type"]
    # An unknown key is shown where it is; a refused value where the value is.
    where = positions.get((*loc, "<key>") if kind == "extra_forbidden" else loc)
    at = f":{where}" if where else ""
    if kind == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see the README"
        message = f"{shown}{at}{by}: {key}: unknown key (allowed here: {allowed})"
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


def _key_shown(part: Any) -> str:
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

    from .config_schema import ConfigFileModel

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
