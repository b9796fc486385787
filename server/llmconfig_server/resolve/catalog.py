"""What we know about each provider and its models, and the lookups the cascade makes with it.

The knowledge is data: `catalog.yaml` shipped in the package, an operator's file over it
(catalog_file.py reads both), and what the providers list themselves (model_lists.py). They are
merged into one immutable `Catalog` per server state, for the day it was built (a `retires_on`
that has passed makes a model retired). Nothing here reads the environment or knows gRPC.

The shipped file is read on first use, not on import, and without pydantic (the test suite
checks it against the schema): `import llmconfig_server.app` stays as cheap as before, and the
first `build` pays for YAML alone (docs/performance.md says what that costs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from llmconfig_server.resolve.catalog_file import Entries

MODES: Final = ("cloud", "local")
TIERS: Final = ("balanced", "fast", "powerful")
# A mode's defaults are its provider's defaults: the contract's local-mode numbers are Ollama's,
# its cloud-mode numbers are Anthropic's, so one table cannot drift from the other.
MODE_PROVIDER: Final = MappingProxyType({"local": "ollama", "cloud": "anthropic"})
STATUSES: Final = ("active", "legacy", "deprecated", "retired")
OPENAI_COMPATIBLE: Final = "openai-compatible"
_REPLACEMENT_HOPS: Final = 8  # a chain of replacements longer than this is a loop


@dataclass(frozen=True, slots=True)
class ModeDefaults:
    mode: str
    provider: str


MODE_DEFAULTS: Final = MappingProxyType(
    {mode: ModeDefaults(mode, provider) for mode, provider in MODE_PROVIDER.items()})


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    display_name: str
    kind: str  # anthropic | ollama | openai | openai-compatible: which probe and client recipe
    default_model: str | None
    default_base_url: str
    default_max_tokens: int | None
    default_temperature: float | None
    max_tokens_limit: int | None
    temperature_range: tuple[float, float]
    needs_key: bool
    # The temperature a `default-only` model takes.
    model_temperature_default: float | None = None
    # Where this provider's own (provider-scoped) values are read from.
    key_env: str | None = None
    key_flag: str | None = None
    base_url_envs: tuple[str, ...] = ()
    # A variable parsed the way Ollama's own clients parse OLLAMA_HOST.
    host_env: str | None = None
    # The native root must not end in this (clients append it themselves); stripped with a warning.
    strip_suffix: str | None = None
    # Appended to the native root to get an OpenAI-compatible root; None: the provider has none.
    openai_suffix: str | None = None
    # Recognising values that belong to this provider.
    model_families: tuple[str, ...] = ()
    key_prefixes: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    # Friendly name → canonical id, and tier → canonical id (names match exactly).
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tiers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # An id outside the known ones (for a provider with a closed list) is served with a warning
    # naming the closest known ones.
    closed_model_list: bool = False
    source: str = ""
    checked: date | None = None

    @property
    def openai_compatible(self) -> bool:
        """Declared as data: any server that speaks OpenAI's API at its base URL."""
        return self.kind == OPENAI_COMPATIBLE


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the catalog (and the provider's own list) says about one model."""

    id: str
    provider: str
    aliases: tuple[str, ...] = ()
    family: str = ""
    tier: str | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None
    temperature: str = "range"  # range | default-only | reasoning-off
    status: str = "active"  # as the data says; see Catalog.status_of for the effective one
    retires_on: date | None = None
    replacement: str | None = None
    source: str = ""
    checked: date | None = None
    in_catalog: bool = True  # shipped or operator data
    listed: bool = False  # the provider's own model list has it


@dataclass(frozen=True, slots=True)
class Listed:
    """One model as a provider's list gives it; limits and dates only when the API says."""

    id: str
    max_output_tokens: int | None = None
    context_window: int | None = None
    retires_on: date | None = None


@dataclass(frozen=True, slots=True)
class Successor:
    """Where a deprecated or retired model leads: the model to use instead (after following
    replacements that were themselves retired) and the path there."""

    model: str | None
    path: tuple[str, ...]


class Catalog:
    """Providers and models for one server state, as of `today`."""

    def __init__(self, providers: Mapping[str, ProviderSpec],
                 models: Iterable[ModelFacts], today: date, digest: str = "") -> None:
        self.today = today
        self.models: Mapping[tuple[str, str], ModelFacts] = MappingProxyType(
            {(m.provider, m.id): m for m in models})
        self.providers: Mapping[str, ProviderSpec] = MappingProxyType(
            {name: _with_names(spec, self.models) for name, spec in providers.items()})
        self.names: tuple[str, ...] = tuple(sorted(self.providers))
        # Longest prefix first, so "sk-ant-" wins over "sk-".
        self._key_prefixes = sorted(
            ((prefix, spec.name) for spec in self.providers.values()
             for prefix in spec.key_prefixes),
            key=lambda pair: -len(pair[0]))
        # Longest family first: `gpt-oss` (open weights, Ollama) before `gpt` (OpenAI).
        self._families = sorted(
            ((family, spec.name) for spec in self.providers.values()
             for family in spec.model_families),
            key=lambda pair: -len(pair[0]))
        self.fingerprint = hashlib.sha256(
            f"{digest}\x1f{today.isoformat()}\x1f{sorted(self.models.items())!r}".encode()
        ).hexdigest()[:16]
        # Pure functions of a string, called on every resolution: memoised per catalog.
        self.provider_of_model = lru_cache(maxsize=4096)(self._provider_of_model)
        self.provider_of_key = lru_cache(maxsize=4096)(self._provider_of_key)
        self.provider_of_base_url = lru_cache(maxsize=4096)(self._provider_of_base_url)
        self.canonical_model = lru_cache(maxsize=4096)(self._canonical_model)
        self.case_hint = lru_cache(maxsize=4096)(self._case_hint)

    def __repr__(self) -> str:  # state fingerprints repr their sources: equal data, equal repr
        return f"Catalog({self.fingerprint})"

    # -- names ----------------------------------------------------------------------------------

    def known_providers_text(self) -> str:
        return ", ".join(self.names)

    def split_provider_prefix(self, model: str) -> tuple[str | None, str]:
        """`ollama:qwen2.5-coder:7b` → ("ollama", "qwen2.5-coder:7b"); only a known provider
        splits."""
        prefix, sep, rest = model.partition(":")
        if sep and prefix.lower() in self.providers and rest:
            return prefix.lower(), rest
        return None, model

    def _provider_of_model(self, model: str) -> str | None:
        """The provider a model name belongs to; None when the name does not say (tiers,
        unknowns, and whatever an OpenAI-compatible server calls its models)."""
        prefixed, bare = self.split_provider_prefix(model)
        if prefixed:
            return prefixed
        lowered = bare.lower()
        if lowered.startswith("ft:"):
            return "openai"  # OpenAI fine-tunes: ft:gpt-4o-mini:org::id
        if "/" in bare and bare != lowered:
            return None  # Hugging Face naming (Qwen/Qwen3-8B): what vLLM and its kind serve
        if ":" in lowered:
            return "ollama"  # name:tag is Ollama's naming (gpt-oss:20b is an Ollama model too)
        for family, owner in self._families:
            if lowered.startswith(family):
                return owner
        for spec in self.providers.values():
            if lowered in spec.aliases and not spec.openai_compatible:
                return spec.name
        return None

    def _provider_of_key(self, key: str) -> str | None:
        for prefix, provider in self._key_prefixes:
            if key.startswith(prefix):
                return provider
        return None

    def _provider_of_base_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            port = None
        for spec in self.providers.values():
            if host in spec.hosts or (port is not None and port in spec.ports):
                return spec.name
        return None

    def _canonical_model(self, provider: str, model: str) -> str:
        """The provider's canonical id for a model, tier or friendly name; unknown ids pass
        through. Names match exactly, as in graphton's map: `QWEN2.5-coder` is not
        `qwen2.5-coder` (provider model ids are case-sensitive; a value is never rewritten on a
        guess)."""
        spec = self.providers[provider]
        _, bare = self.split_provider_prefix(model)
        if bare in spec.tiers:
            return spec.tiers[bare]
        return spec.aliases.get(bare, bare)

    def _case_hint(self, provider: str, model: str) -> str | None:
        """The friendly name or tier that `model` is in another case (`QWEN2.5-coder` →
        `qwen2.5-coder`), for a warning; None when there is none."""
        spec = self.providers[provider]
        _, bare = self.split_provider_prefix(model)
        lowered = bare.lower()
        if lowered != bare and (lowered in spec.tiers or lowered in spec.aliases):
            return lowered
        return None

    def key_hint(self, key: str) -> str:
        """`sk-ant-…f2c9`: the key's public prefix and never more than its last 4 characters."""
        if not key:
            return ""
        prefix = next((p for p, _ in self._key_prefixes if key.startswith(p)), "")
        # A short key would be mostly revealed by its last 4 characters.
        tail = key[-4:] if len(key) - len(prefix) >= 12 else ""
        return f"{prefix}…{tail}"

    # -- models ---------------------------------------------------------------------------------

    def model(self, provider: str, model_id: str) -> ModelFacts | None:
        """The facts about a canonical id, or None for an id nobody here knows."""
        return self.models.get((provider, model_id))

    def known_ids(self, provider: str) -> frozenset[str]:
        return frozenset(model_id for (owner, model_id) in self.models if owner == provider)

    def status_of(self, facts: ModelFacts) -> str:
        """The effective lifecycle status: a retirement date that has come means retired."""
        if facts.retires_on is not None and facts.retires_on <= self.today:
            return "retired"
        return facts.status

    def successor(self, facts: ModelFacts) -> Successor:
        """The model to use instead of `facts` (a replacement that is itself retired is
        followed to its own replacement)."""
        path: list[str] = []
        current: ModelFacts | None = facts
        while current is not None and current.replacement and len(path) < _REPLACEMENT_HOPS:
            target = self.canonical_model(current.provider, current.replacement)
            if target in path or target == facts.id:
                break
            path.append(target)
            current = self.model(current.provider, target)
            if current is None or self.status_of(current) != "retired":
                return Successor(target, tuple(path))
        return Successor(path[-1] if path else None, tuple(path))

    def with_listed(self, listed: Mapping[str, Iterable[Listed]]) -> Catalog:
        """This catalog with what the providers list: a listed id is known; a limit or a
        shutdown date the API gives wins over the data's."""
        models = dict(self.models)
        for provider, entries in listed.items():
            if provider not in self.providers:
                continue
            for entry in entries:
                key = (provider, self.canonical_model(provider, entry.id))
                known = models.get(key)
                if known is None:
                    models[key] = ModelFacts(
                        entry.id, provider, max_output_tokens=entry.max_output_tokens,
                        context_window=entry.context_window, retires_on=entry.retires_on,
                        status="deprecated" if entry.retires_on else "active",
                        source="listed by the provider", in_catalog=False, listed=True)
                    continue
                models[key] = replace(
                    known, listed=True,
                    max_output_tokens=entry.max_output_tokens or known.max_output_tokens,
                    context_window=entry.context_window or known.context_window,
                    retires_on=entry.retires_on or known.retires_on,
                    status="deprecated" if entry.retires_on and known.status in (
                        "active", "legacy") else known.status)
        digest = hashlib.sha256(repr(sorted(models.items())).encode()).hexdigest()
        return Catalog(self.providers, models.values(), self.today, digest)


def _with_names(spec: ProviderSpec, models: Mapping[tuple[str, str], ModelFacts],
                ) -> ProviderSpec:
    """The provider's friendly names and tiers, from its models."""
    aliases: dict[str, str] = {}
    tiers: dict[str, str] = {}
    for (owner, model_id), facts in models.items():
        if owner != spec.name:
            continue
        for alias in facts.aliases:
            aliases[alias] = model_id
        if facts.tier:
            tiers[facts.tier] = model_id
    return replace(spec, aliases=MappingProxyType(aliases), tiers=MappingProxyType(tiers))


def today() -> date:
    return datetime.now(UTC).date()


@lru_cache(maxsize=1)
def shipped_entries() -> Entries:
    """The package's catalog.yaml, read and checked once per process."""
    from importlib.resources import files

    from llmconfig_server.resolve.catalog_file import parse_text

    text = files(__package__).joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_text(text, "catalog.yaml (shipped with llmconfig)", trusted=True)


@lru_cache(maxsize=4)
def _shipped_on(day: date) -> Catalog:
    from llmconfig_server.resolve.catalog_file import assemble

    return assemble(shipped_entries(), None, day)


def shipped() -> Catalog:
    """The shipped catalog as of today, with no operator file and nothing listed."""
    return _shipped_on(today())


# The lookups as module functions, on the shipped catalog, for callers that have no state at
# hand (the client-facing key hints of runner settings, tests, the bench).

def known_providers_text() -> str:
    return shipped().known_providers_text()


def split_provider_prefix(model: str) -> tuple[str | None, str]:
    return shipped().split_provider_prefix(model)


def provider_of_model(model: str) -> str | None:
    return shipped().provider_of_model(model)


def provider_of_key(key: str) -> str | None:
    return shipped().provider_of_key(key)


def provider_of_base_url(url: str) -> str | None:
    return shipped().provider_of_base_url(url)


def canonical_model(provider: str, model: str) -> str:
    return shipped().canonical_model(provider, model)


def case_hint(provider: str, model: str) -> str | None:
    return shipped().case_hint(provider, model)


def key_hint(key: str) -> str:
    return shipped().key_hint(key)
