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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .domain import Reason, Source, Violation

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .config_schema import ConfigFileModel

CONFIG_ENV = "STIGMER_CONFIG"


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
        return _named(Path(explicit).expanduser(), cwd, "--config")
    if named := environ.get(CONFIG_ENV, "").strip():
        return _named(Path(named).expanduser(), cwd, CONFIG_ENV)
    for candidate in (cwd / ".stigmer" / "config.yaml", home / ".stigmer" / "config.yaml"):
        if candidate.is_file():
            return candidate, "found"
    return None, "none"


def _named(path: Path, cwd: Path, by: str) -> tuple[Path, str]:
    return (path if path.is_absolute() else cwd / path), by


def load(path: Path, home: Path, named_by: str) -> LoadedFile:
    # pydantic and YAML cost ~80 ms to import: only a server that has a file pays for them.
    import yaml
    from pydantic import ValidationError

    from .config_schema import ConfigFileModel

    shown = display_path(path, home)

    def fail(subject: str, message: str, reason: Reason = Reason.CONFIG_FILE_INVALID) -> Violation:
        return Violation("config", reason, message, Source.FILE, subject)

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(
            [fail(named_by, f"config file {shown} (named by {named_by}) does not exist",
                  Reason.CONFIG_FILE_MISSING)]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(
            [fail(shown, f"config file {shown} cannot be read: {_os_reason(exc)}")]
        ) from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError([fail(shown, _yaml_message(shown, exc))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            [fail(shown, f"{shown}: the top level must be a mapping with keys such as llm:, "
                         f"local:, cloud:; found {type(data).__name__}")]
        )
    try:
        content = ConfigFileModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError([_field_violation(shown, err) for err in exc.errors()]) from None
    return LoadedFile(path, shown, content)


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _yaml_message(shown: str, exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: invalid YAML: {problem}"


def _field_violation(shown: str, err: Any) -> Violation:
    key = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see the README"
        message = f"{shown}: {key}: unknown key (allowed here: {allowed})"
    else:
        shown_input = "<secret>" if key.endswith("api_key") else repr(err.get("input"))
        message = f"{shown}: {key}: {err['msg'].lower()}, got {shown_input}"
    return Violation(key.rsplit(".", 1)[-1], Reason.CONFIG_FILE_INVALID, message, Source.FILE,
                     f"{shown}: {key}")


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
