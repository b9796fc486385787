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
from typing import Any, Final

from llmconfig_server.resolve.catalog import OPENAI_COMPATIBLE, Catalog, ModelFacts, ProviderSpec
from llmconfig_server.resolve.parsing import control_character, shorten_path
from llmconfig_server.support import files
from llmconfig_server.support.files import FileProblem

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
    """A catalog file's entries, as mappings of the keys each one sets, and where each one is
    written."""

    providers: tuple[Mapping[str, Any], ...]
    models: tuple[Mapping[str, Any], ...]
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
    return Entries(entries.providers, entries.models, shown, entries.lines,
                   hashlib.sha256(text.encode()).hexdigest())


def parse_text(text: str, shown: str, *, trusted: bool = False) -> Entries:
    """The entries of a catalog file, schema-checked with pydantic — unless `trusted`: the
    shipped catalog.yaml, checked by the test suite (tests/test_catalog_data.py pins that the
    checked and the trusted readings give the same catalog), is read without pydantic, whose
    import and schema cost more than the rest of a cold start."""
    from llmconfig_server.support import safe_yaml

    try:
        data, lines = safe_yaml.load_located(text)
    except safe_yaml.YAMLProblem as exc:
        raise CatalogProblem([f"{shown}{exc.where}: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogProblem([f"{shown}:1: the top level must be a mapping with providers: "
                              f"and models:; found {type(data).__name__}"])
    located = MappingProxyType(lines)
    if trusted:
        return Entries(tuple(data.get("providers") or ()), tuple(data.get("models") or ()),
                       shown, located)
    from pydantic import ValidationError

    from llmconfig_server.resolve.catalog_schema import CatalogFile

    try:
        content = CatalogFile.model_validate(data)
    except ValidationError as exc:
        where = Entries((), (), shown, located)
        raise CatalogProblem([_schema_problem(where, error) for error in
                              exc.errors(include_url=False, include_input=False)]) from None
    # The keys each entry sets (an override replaces those alone), with pydantic's types.
    return Entries(tuple(entry.model_dump(exclude_unset=True) for entry in content.providers),
                   tuple(entry.model_dump(exclude_unset=True) for entry in content.models),
                   shown, located)


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
    from llmconfig_server.resolve.catalog_schema import (
        CatalogFile,
        ModelEntry,
        ProviderEntry,
        TemperatureRange,
    )

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
    providers: dict[str, tuple[dict[str, Any], Entries, int]] = {}
    for source in (shipped, operator):
        if source is None:
            continue
        seen: set[str] = set()
        for index, entry in enumerate(source.providers):
            where = source.at("providers", index)
            name, kind = entry["name"], entry["kind"]
            if name in seen:
                problems.append(f"{where}: provider {name} is declared twice in this file")
                continue
            seen.add(name)
            if name in providers:
                base = providers[name][0]
                if kind != base["kind"]:
                    problems.append(f"{where}: provider {name} is kind {base['kind']}; an "
                                    f"entry overriding it cannot make it {kind}")
                    continue
                providers[name] = ({**base, **entry}, source, index)
                continue
            if source is operator and kind != OPENAI_COMPATIBLE:
                problems.append(f"{where}: a new provider ({name}) must be kind "
                                f"{OPENAI_COMPATIBLE}; {kind} providers need llmconfig's own "
                                "code")
                continue
            if not entry.get("base_url"):
                problems.append(f"{where}: provider {name} has no base_url (the root of its "
                                "API, e.g. http://localhost:8000/v1)")
                continue
            providers[name] = (dict(entry), source, index)
    models: dict[tuple[str, str], tuple[dict[str, Any], Entries, int]] = {}
    for source in (shipped, operator):
        if source is None:
            continue
        seen_models: set[tuple[str, str]] = set()
        for index, entry in enumerate(source.models):
            where = source.at("models", index)
            key = (entry["provider"], entry["id"])
            if key[0] not in providers:
                problems.append(f"{where}: model {key[1]}: provider {key[0]} is not declared "
                                f"(known: {', '.join(sorted(providers))})")
                continue
            if key in seen_models:
                problems.append(f"{where}: model {key[1]} of {key[0]} is declared twice in "
                                "this file")
                continue
            seen_models.add(key)
            merged = {**models[key][0], **entry} if key in models else dict(entry)
            models[key] = (merged, source, index)
    problems += _names_problems(models)
    problems += _reference_problems(providers, models)
    if problems:
        raise CatalogProblem(problems)
    specs = {name: _spec(entry) for name, (entry, _, _) in providers.items()}
    facts = [_facts(entry) for entry, _, _ in models.values()]
    digest = "\x1f".join(e.digest for e in (shipped, operator) if e is not None)
    return Catalog(specs, facts, day, digest)


_Located = Mapping[tuple[str, str], tuple[dict[str, Any], Entries, int]]


def _names_problems(models: _Located) -> list[str]:
    """Each id, alias and tier of a provider names one model."""
    problems = []
    names: dict[tuple[str, str], str] = {}
    tiers: dict[tuple[str, str], str] = {}
    for provider, model_id in models:
        names[(provider, model_id.lower())] = model_id
    for (provider, model_id), (entry, source, index) in models.items():
        for number, alias in enumerate(entry.get("aliases") or ()):
            owner = names.setdefault((provider, alias.lower()), model_id)
            if owner != model_id:
                problems.append(f"{source.at('models', index, 'aliases', number)}: alias "
                                f"{_part(alias)} of {model_id} already names {owner}")
        if tier := entry.get("tier"):
            holder = tiers.setdefault((provider, tier), model_id)
            if holder != model_id:
                problems.append(f"{source.at('models', index, 'tier')}: tier {tier} of "
                                f"{provider} is already {holder}")
    return problems


def _reference_problems(providers: Mapping[str, tuple[dict[str, Any], Entries, int]],
                        models: _Located) -> list[str]:
    """A replacement or a closed-list provider's default model names a model that exists."""
    known = {(p, m.lower()) for p, m in models}
    for (provider, _), (entry, _, _) in models.items():
        known.update((provider, alias.lower()) for alias in entry.get("aliases") or ())
    problems = []
    for (provider, model_id), (entry, source, index) in models.items():
        replacement = entry.get("replacement")
        if replacement and (provider, replacement.lower()) not in known:
            problems.append(f"{source.at('models', index, 'replacement')}: the replacement of "
                            f"{model_id} ({replacement}) is not a model of {provider} in the "
                            "catalog")
    for name, (declared, source, index) in providers.items():
        default = declared.get("default_model")
        if default and declared.get("closed_model_list") and (name, default.lower()) not in known:
            problems.append(f"{source.at('providers', index, 'default_model')}: the default "
                            f"model of {name} ({default}) is not one of its models")
    return problems


# The schema's defaults (catalog_schema.py), for entries read without it.

def _spec(entry: Mapping[str, Any]) -> ProviderSpec:
    compatible = entry["kind"] == OPENAI_COMPATIBLE
    temperature = entry.get("temperature") or {}
    return ProviderSpec(
        name=entry["name"],
        display_name=entry.get("display_name") or entry["name"],
        kind=entry["kind"],
        default_model=entry.get("default_model"),
        default_base_url=entry.get("base_url") or "",
        default_max_tokens=entry.get("default_max_tokens"),
        default_temperature=entry.get("default_temperature"),
        max_tokens_limit=entry.get("max_tokens_limit"),
        temperature_range=(float(temperature["min"]), float(temperature["max"]))
        if temperature else (0.0, 2.0),
        model_temperature_default=temperature.get("default"),
        needs_key=entry.get("api_key_env") is not None,
        key_env=entry.get("api_key_env"),
        key_flag=entry.get("api_key_flag"),
        base_url_envs=tuple(entry.get("base_url_envs") or ()),
        host_env=entry.get("host_env"),
        strip_suffix=entry.get("strip_suffix"),
        # An OpenAI-compatible server's root is its OpenAI-compatible root.
        openai_suffix="" if compatible else entry.get("openai_suffix"),
        model_families=tuple(entry.get("model_families") or ()),
        key_prefixes=tuple(entry.get("key_prefixes") or ()),
        hosts=tuple(entry.get("hosts") or ()),
        ports=tuple(entry.get("ports") or ()),
        closed_model_list=bool(entry.get("closed_model_list", False)),
        source=entry.get("source") or "",
        checked=entry.get("checked"),
    )


def _facts(entry: Mapping[str, Any]) -> ModelFacts:
    return ModelFacts(
        id=entry["id"], provider=entry["provider"], aliases=tuple(entry.get("aliases") or ()),
        family=entry.get("family") or "", tier=entry.get("tier"),
        max_output_tokens=entry.get("max_output_tokens"),
        context_window=entry.get("context_window"),
        temperature=entry.get("temperature", "range"), status=entry.get("status", "active"),
        retires_on=entry.get("retires_on"), replacement=entry.get("replacement"),
        source=entry.get("source") or "", checked=entry.get("checked"))
