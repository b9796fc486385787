"""Reading a catalog file — the shipped catalog.yaml or an operator's --catalog file — and merging
them into a `Catalog`, with one line per problem, `file:line: what is wrong`.

An operator file adds providers (only `kind: openai-compatible`: the others need code) and
models, or overrides fields of shipped ones (an entry with the same provider name, or the same
provider and model id, replaces the fields it sets). Problems found here never reach a caller as
a stack trace: at start they stop the server (exit 2), on reload the last good catalog stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from . import files
from .catalog import OPENAI_COMPATIBLE, Catalog, ModelFacts, ProviderSpec
from .files import FileProblem
from .parsing import control_character, shorten_path

if TYPE_CHECKING:
    from .catalog_schema import CatalogFile, ModelEntry, ProviderEntry

CATALOG_ENV: Final = "STIGMER_LLMCONFIG_CATALOG"
CATALOG_FILE_LIMIT: Final = 1024 * 1024
_MAX_REPORTED: Final = 20  # problems listed from one file; the rest are counted
_KEYS_TO_SHOW: Final = 64


class CatalogProblem(Exception):
    """A catalog file cannot be used; `problems` are one line each, `file:line: …`."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:_MAX_REPORTED]
        if len(problems) > _MAX_REPORTED:
            shown.append(f"… and {len(problems) - _MAX_REPORTED} more problems")
        super().__init__("; ".join(shown))
        self.problems = shown


@dataclass(frozen=True, slots=True)
class Entries:
    """A checked catalog file: its entries and where each one is written."""

    content: CatalogFile
    shown: str  # the file as messages name it
    lines: Mapping[tuple[Any, ...], int]
    digest: str = ""

    def at(self, *path: Any) -> str:
        """`file:line` of the value at `path` (or of the nearest enclosing one)."""
        for end in range(len(path), -1, -1):
            if (line := self.lines.get(tuple(path[:end]))) is not None:
                return f"{self.shown}:{line}"
        return self.shown


def locate(flag: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The operator's catalog file: --catalog, else STIGMER_LLMCONFIG_CATALOG, else none."""
    name = flag or environ.get(CATALOG_ENV, "").strip()
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else cwd / path


def load(path: Path, home: Path) -> Entries:
    """The operator's file, checked on its own (it is merged with `assemble`)."""
    import hashlib

    raw = str(path)
    if found := control_character(raw):
        raise CatalogProblem([f"--catalog/{CATALOG_ENV}: the file name contains a control "
                              f"character ({found[1]} at position {found[0]})"])
    shown = shorten_path(_display(path, home))
    try:
        text = files.read_text(path, limit=CATALOG_FILE_LIMIT)
    except FileProblem as exc:
        raise CatalogProblem([f"catalog file {shown}: {str(exc).replace(raw, shown)}"]) from None
    entries = parse_text(text, shown)
    return Entries(entries.content, shown, entries.lines,
                   hashlib.sha256(text.encode()).hexdigest())


def parse_text(text: str, shown: str) -> Entries:
    from pydantic import ValidationError

    from . import safe_yaml
    from .catalog_schema import CatalogFile

    try:
        data, lines = safe_yaml.load_located(text)
    except safe_yaml.YAMLProblem as exc:
        raise CatalogProblem([f"{shown}{exc.where}: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogProblem([f"{shown}:1: the top level must be a mapping with providers: "
                              f"and models:; found {type(data).__name__}"])
    entries = Entries(CatalogFile(), shown, MappingProxyType(lines))
    try:
        content = CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogProblem([_schema_problem(entries, error) for error in
                              exc.errors(include_url=False, include_input=False)]) from None
    return Entries(content, shown, MappingProxyType(lines))


def _schema_problem(entries: Entries, error: Any) -> str:
    loc = tuple(error["loc"])
    key = ".".join(_part(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{entries.at(*loc)}: {key}: unknown key ({_allowed(loc)})"
    return f"{entries.at(*loc)}: {key}: {error['msg'].lower()}"


def _part(part: Any) -> str:
    text = str(part)
    if len(text) > _KEYS_TO_SHOW or control_character(text):
        return repr(text[:_KEYS_TO_SHOW])
    return text


def _allowed(loc: tuple[Any, ...]) -> str:
    from .catalog_schema import CatalogFile, ModelEntry, ProviderEntry, TemperatureRange

    model: Any = CatalogFile
    if len(loc) >= 3 and loc[0] == "providers":
        model = TemperatureRange if len(loc) >= 4 and loc[2] == "temperature" else ProviderEntry
    elif len(loc) >= 3 and loc[0] == "models":
        model = ModelEntry
    return "allowed here: " + ", ".join(sorted(model.model_fields))


def _display(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


# -- merging --------------------------------------------------------------------------------------

def assemble(shipped: Entries, operator: Entries | None, day: date) -> Catalog:
    """The shipped entries with the operator's over them, checked as a whole; raises
    CatalogProblem listing every problem."""
    problems: list[str] = []
    providers: dict[str, tuple[ProviderEntry, Entries, int]] = {}
    for source in (shipped, operator):
        if source is None:
            continue
        seen: set[str] = set()
        for index, entry in enumerate(source.content.providers):
            where = source.at("providers", index)
            if entry.name in seen:
                problems.append(f"{where}: provider {entry.name} is declared twice in this file")
                continue
            seen.add(entry.name)
            if entry.name in providers:
                shipped_entry = providers[entry.name][0]
                if entry.kind != shipped_entry.kind:
                    problems.append(f"{where}: provider {entry.name} is kind "
                                    f"{shipped_entry.kind}; an entry overriding it cannot make "
                                    f"it {entry.kind}")
                    continue
                merged = shipped_entry.model_copy(update={f: getattr(entry, f)
                                                 for f in entry.model_fields_set})
                providers[entry.name] = (merged, source, index)
                continue
            if source is operator and entry.kind != OPENAI_COMPATIBLE:
                problems.append(f"{where}: a new provider ({entry.name}) must be kind "
                                f"{OPENAI_COMPATIBLE}; {entry.kind} providers need llmconfig's "
                                "own code")
                continue
            if not entry.base_url:
                problems.append(f"{where}: provider {entry.name} has no base_url (the root of "
                                "its API, e.g. http://localhost:8000/v1)")
                continue
            providers[entry.name] = (entry, source, index)
    models: dict[tuple[str, str], tuple[ModelEntry, Entries, int]] = {}
    for source in (shipped, operator):
        if source is None:
            continue
        seen_models: set[tuple[str, str]] = set()
        for index, model in enumerate(source.content.models):
            where = source.at("models", index)
            key = (model.provider, model.id)
            if model.provider not in providers:
                problems.append(f"{where}: model {model.id}: provider {model.provider} is not "
                                f"declared (known: {', '.join(sorted(providers))})")
                continue
            if key in seen_models:
                problems.append(f"{where}: model {model.id} of {model.provider} is declared "
                                "twice in this file")
                continue
            seen_models.add(key)
            if key in models:
                model = models[key][0].model_copy(update={f: getattr(model, f)
                                                          for f in model.model_fields_set})
            models[key] = (model, source, index)
    problems += _names_problems(models)
    problems += _reference_problems(providers, models)
    if problems:
        raise CatalogProblem(problems)
    specs = {name: _spec(entry) for name, (entry, _, _) in providers.items()}
    facts = [_facts(entry, source is not None) for entry, source, _ in models.values()]
    digest = "\x1f".join(e.digest for e in (shipped, operator) if e is not None)
    return Catalog(specs, facts, day, digest)


def _names_problems(models: Mapping[tuple[str, str], tuple[ModelEntry, Entries, int]],
                    ) -> list[str]:
    """Each id, alias and tier of a provider names one model."""
    problems = []
    names: dict[tuple[str, str], str] = {}
    tiers: dict[tuple[str, str], str] = {}
    for (provider, model_id), _ in models.items():
        names[(provider, model_id.lower())] = model_id
    for (provider, model_id), (entry, source, index) in models.items():
        for number, alias in enumerate(entry.aliases):
            owner = names.setdefault((provider, alias.lower()), model_id)
            if owner != model_id:
                problems.append(f"{source.at('models', index, 'aliases', number)}: alias "
                                f"{_part(alias)} of {model_id} already names {owner}")
        if entry.tier:
            holder = tiers.setdefault((provider, entry.tier), model_id)
            if holder != model_id:
                problems.append(f"{source.at('models', index, 'tier')}: tier {entry.tier} of "
                                f"{provider} is already {holder}")
    return problems


def _reference_problems(providers: Mapping[str, tuple[ProviderEntry, Entries, int]],
                        models: Mapping[tuple[str, str], tuple[ModelEntry, Entries, int]],
                        ) -> list[str]:
    """A replacement or a closed-list provider's default model names a model that exists."""
    known = {(p, m.lower()) for p, m in models}
    for (provider, _), (entry, _, _) in models.items():
        known.update((provider, alias.lower()) for alias in entry.aliases)
    problems = []
    for (provider, model_id), (entry, source, index) in models.items():
        if entry.replacement and (provider, entry.replacement.lower()) not in known:
            problems.append(f"{source.at('models', index, 'replacement')}: the replacement of "
                            f"{model_id} ({entry.replacement}) is not a model of {provider} "
                            "in the catalog")
    for name, (declared, source, index) in providers.items():
        default = declared.default_model
        if default and declared.closed_model_list and (name, default.lower()) not in known:
            problems.append(f"{source.at('providers', index, 'default_model')}: the default "
                            f"model of {name} ({default}) is not one of its models")
    return problems


def _spec(entry: ProviderEntry) -> ProviderSpec:
    compatible = entry.kind == OPENAI_COMPATIBLE
    temperature = entry.temperature
    return ProviderSpec(
        name=entry.name,
        display_name=entry.display_name or entry.name,
        kind=entry.kind,
        default_model=entry.default_model,
        default_base_url=entry.base_url or "",
        default_max_tokens=entry.default_max_tokens,
        default_temperature=entry.default_temperature,
        max_tokens_limit=entry.max_tokens_limit,
        temperature_range=(temperature.min, temperature.max) if temperature else (0.0, 2.0),
        model_temperature_default=temperature.default if temperature else None,
        needs_key=entry.api_key_env is not None,
        key_env=entry.api_key_env,
        key_flag=entry.api_key_flag,
        base_url_envs=tuple(entry.base_url_envs),
        host_env=entry.host_env,
        strip_suffix=entry.strip_suffix,
        # An OpenAI-compatible server's root is its OpenAI-compatible root.
        openai_suffix="" if compatible else entry.openai_suffix,
        model_families=tuple(entry.model_families),
        key_prefixes=tuple(entry.key_prefixes),
        hosts=tuple(entry.hosts),
        ports=tuple(entry.ports),
        closed_model_list=entry.closed_model_list,
        source=entry.source or "",
        checked=entry.checked,
    )


def _facts(entry: ModelEntry, in_catalog: bool) -> ModelFacts:
    return ModelFacts(
        id=entry.id, provider=entry.provider, aliases=tuple(entry.aliases),
        family=entry.family or "", tier=entry.tier, max_output_tokens=entry.max_output_tokens,
        context_window=entry.context_window, temperature=entry.temperature,
        status=entry.status, retires_on=entry.retires_on, replacement=entry.replacement,
        source=entry.source or "", checked=entry.checked, in_catalog=in_catalog)
