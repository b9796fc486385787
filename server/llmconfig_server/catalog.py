"""What we know about each provider: names, defaults, limits, and how to recognise its values.

A new provider is one `ProviderSpec` in `PROVIDERS` (plus one probe module for health).
Nothing here reads the environment or knows about gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class ModelRule:
    """What a provider documents for some of its models (ids starting with `prefix`)."""

    prefix: str
    max_tokens_limit: int | None = None  # the model's output limit, below the provider's
    # The only temperature the model accepts (OpenAI's reasoning models take the default 1).
    fixed_temperature: float | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    display_name: str
    default_model: str
    default_base_url: str
    default_max_tokens: int | None
    default_temperature: float | None
    max_tokens_limit: int
    temperature_range: tuple[float, float]
    needs_key: bool
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
    aliases: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tiers: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Longest prefix first is not needed: rules are matched in order, most specific first.
    model_rules: tuple[ModelRule, ...] = ()
    # Canonical ids the catalog knows beyond its aliases and tiers; an id outside them (for a
    # provider with a closed list) is served with a warning naming the closest known ones.
    known_models: tuple[str, ...] = ()
    closed_model_list: bool = False

    def rule_for(self, model: str) -> ModelRule | None:
        return next((r for r in self.model_rules if model.startswith(r.prefix)), None)

    def known_ids(self) -> frozenset[str]:
        return frozenset((*self.aliases.values(), *self.tiers.values(), *self.known_models))


def _frozen(mapping: dict[str, str]) -> MappingProxyType[str, str]:
    return MappingProxyType(mapping)


ANTHROPIC: Final = ProviderSpec(
    name="anthropic",
    display_name="Anthropic",
    default_model="claude-sonnet-4.5",
    default_base_url="https://api.anthropic.com",
    default_max_tokens=20000,
    default_temperature=None,
    max_tokens_limit=64000,
    temperature_range=(0.0, 1.0),
    needs_key=True,
    key_env="ANTHROPIC_API_KEY",
    key_flag="--anthropic-key",
    base_url_envs=("ANTHROPIC_BASE_URL",),
    strip_suffix="/v1",
    openai_suffix=None,
    model_families=("claude",),
    key_prefixes=("sk-ant-",),
    hosts=("api.anthropic.com",),
    aliases=_frozen(
        {
            "claude-sonnet-4.5": "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
            "claude-haiku-4.5": "claude-haiku-4-5-20251001",
            "claude-haiku-4-5": "claude-haiku-4-5-20251001",
            # Seed 000 lists claude-haiku-4; the only Haiku 4.x is 4.5.
            "claude-haiku-4": "claude-haiku-4-5-20251001",
            "claude-opus-4.5": "claude-opus-4-5-20251101",
            "claude-opus-4-5": "claude-opus-4-5-20251101",
            "claude-opus-4.1": "claude-opus-4-1-20250805",
            "claude-opus-4-1": "claude-opus-4-1-20250805",
            "claude-opus-4": "claude-opus-4-20250514",
            "claude-opus-4-0": "claude-opus-4-20250514",
            "claude-sonnet-4": "claude-sonnet-4-20250514",
            "claude-sonnet-4-0": "claude-sonnet-4-20250514",
            "claude-3.7-sonnet": "claude-3-7-sonnet-20250219",
            "claude-3-7-sonnet": "claude-3-7-sonnet-20250219",
            "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
            "claude-3.5-haiku": "claude-3-5-haiku-20241022",
            "claude-3-5-haiku": "claude-3-5-haiku-20241022",
            "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
        }
    ),
    tiers=_frozen(
        {
            "fast": "claude-haiku-4-5-20251001",
            "balanced": "claude-sonnet-4-5-20250929",
            "powerful": "claude-opus-4-5-20251101",
        }
    ),
    # Anthropic's model overview: Opus 4 and 4.1 write at most 32K tokens, Claude 3.5 Haiku
    # 8K; the other current models 64K (the provider limit above).
    model_rules=(
        ModelRule("claude-opus-4-1", max_tokens_limit=32000, why="Claude Opus 4.1"),
        ModelRule("claude-opus-4-2025", max_tokens_limit=32000, why="Claude Opus 4"),
        ModelRule("claude-3-5-haiku", max_tokens_limit=8192, why="Claude 3.5 Haiku"),
    ),
    closed_model_list=True,
)

OLLAMA: Final = ProviderSpec(
    name="ollama",
    display_name="Ollama",
    default_model="qwen2.5-coder:7b",
    default_base_url="http://localhost:11434",
    default_max_tokens=8192,
    default_temperature=0.0,
    max_tokens_limit=131072,
    temperature_range=(0.0, 2.0),
    needs_key=False,
    base_url_envs=("OLLAMA_BASE_URL",),
    host_env="OLLAMA_HOST",
    strip_suffix="/v1",
    openai_suffix="/v1",
    model_families=(
        "qwen",
        "llama",
        "deepseek",
        "codellama",
        "mistral",
        "mixtral",
        "phi",
        "gemma",
        "codegemma",
        "starcoder",
        "granite",
        "smollm",
        "tinyllama",
        "vicuna",
        "nomic-embed",
        "command-r",
        "devstral",
        "magistral",
        "olmo",
        # graphton's other Ollama prefixes (Stigmer's runner places these names on Ollama).
        "yi",
        "solar",
        "orca",
    ),
    ports=(11434,),
    aliases=_frozen(
        {
            "qwen2.5-coder": "qwen2.5-coder:7b",
            "qwen2.5": "qwen2.5:7b",
            "qwen3": "qwen3:8b",
            "qwen3-coder": "qwen3-coder:30b",
            "llama3.2": "llama3.2:3b",
            "llama3.1": "llama3.1:8b",
            "llama3": "llama3:8b",
            "deepseek-r1": "deepseek-r1:7b",
            "deepseek-coder-v2": "deepseek-coder-v2:16b",
            # graphton's OLLAMA_MODEL_MAP (Stigmer's runner): these two keep its meaning.
            "deepseek-coder": "deepseek-coder-v2:16b",
            "codellama": "codellama:13b",
            "mistral": "mistral:7b",
            "gemma2": "gemma2:9b",
            "gemma3": "gemma3:4b",
            "phi3": "phi3:3.8b",
            "phi4": "phi4:14b",
        }
    ),
    tiers=_frozen(
        {
            "fast": "qwen2.5-coder:1.5b",
            "balanced": "qwen2.5-coder:7b",
            "powerful": "qwen2.5-coder:32b",
        }
    ),
)

OPENAI: Final = ProviderSpec(
    name="openai",
    display_name="OpenAI",
    default_model="gpt-4o",
    default_base_url="https://api.openai.com/v1",
    default_max_tokens=None,
    default_temperature=None,
    max_tokens_limit=128000,
    temperature_range=(0.0, 2.0),
    needs_key=True,
    key_env="OPENAI_API_KEY",
    base_url_envs=("OPENAI_BASE_URL",),
    openai_suffix="",
    model_families=("gpt", "o1", "o3", "o4", "chatgpt", "ft:"),
    key_prefixes=("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"),
    hosts=("api.openai.com",),
    tiers=_frozen({"fast": "gpt-4o-mini", "balanced": "gpt-4o", "powerful": "gpt-4.1"}),
    # OpenAI's reasoning models reject any temperature but the default (1); GPT-4o and 4o-mini
    # write at most 16,384 tokens, GPT-4.1 32,768.
    model_rules=(
        ModelRule("o1", fixed_temperature=1.0, why="OpenAI reasoning models (o1, o3, o4)"),
        ModelRule("o3", fixed_temperature=1.0, why="OpenAI reasoning models (o1, o3, o4)"),
        ModelRule("o4", fixed_temperature=1.0, why="OpenAI reasoning models (o1, o3, o4)"),
        ModelRule("gpt-4o", max_tokens_limit=16384, why="GPT-4o"),
        ModelRule("gpt-4.1", max_tokens_limit=32768, why="GPT-4.1"),
    ),
    known_models=("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1",
                  "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano"),
    closed_model_list=True,
)

PROVIDERS: Final[MappingProxyType[str, ProviderSpec]] = MappingProxyType(
    {spec.name: spec for spec in (ANTHROPIC, OLLAMA, OPENAI)}
)
PROVIDER_NAMES: Final = tuple(sorted(PROVIDERS))
MODES: Final = ("cloud", "local")
TIERS: Final = ("balanced", "fast", "powerful")


@dataclass(frozen=True, slots=True)
class ModeDefaults:
    mode: str
    provider: str


# A mode's defaults are its provider's defaults: the contract's local-mode numbers are Ollama's,
# its cloud-mode numbers are Anthropic's, so one table cannot drift from the other.
MODE_DEFAULTS: Final = MappingProxyType(
    {"local": ModeDefaults("local", "ollama"), "cloud": ModeDefaults("cloud", "anthropic")}
)

# Longest prefix first, so "sk-ant-" wins over "sk-".
_KEY_PREFIXES: Final = sorted(
    ((prefix, spec.name) for spec in PROVIDERS.values() for prefix in spec.key_prefixes),
    key=lambda pair: -len(pair[0]),
)


def known_providers_text() -> str:
    return ", ".join(PROVIDER_NAMES)


def split_provider_prefix(model: str) -> tuple[str | None, str]:
    """`ollama:qwen2.5-coder:7b` → ("ollama", "qwen2.5-coder:7b"); only a known provider splits."""
    prefix, sep, rest = model.partition(":")
    if sep and prefix.lower() in PROVIDERS and rest:
        return prefix.lower(), rest
    return None, model


# The lookups below are pure functions of a string, called on every resolution: memoised.
@lru_cache(maxsize=4096)
def provider_of_model(model: str) -> str | None:
    """The provider a model name belongs to; None when the name does not say (tiers, unknowns)."""
    prefixed, bare = split_provider_prefix(model)
    if prefixed:
        return prefixed
    lowered = bare.lower()
    if lowered.startswith("ft:"):
        return "openai"  # OpenAI fine-tunes: ft:gpt-4o-mini:org::id
    if ":" in lowered:
        return "ollama"  # name:tag is Ollama's naming (gpt-oss:20b is an Ollama model too)
    for spec in PROVIDERS.values():
        if any(lowered.startswith(family) for family in spec.model_families):
            return spec.name
    for spec in PROVIDERS.values():
        if lowered in spec.aliases:
            return spec.name
    return None


@lru_cache(maxsize=4096)
def provider_of_key(key: str) -> str | None:
    for prefix, provider in _KEY_PREFIXES:
        if key.startswith(prefix):
            return provider
    return None


@lru_cache(maxsize=4096)
def provider_of_base_url(url: str) -> str | None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    for spec in PROVIDERS.values():
        if host in spec.hosts or (port is not None and port in spec.ports):
            return spec.name
    return None


@lru_cache(maxsize=4096)
def canonical_model(provider: str, model: str) -> str:
    """The provider's canonical id for a model, tier or friendly name; unknown ids pass through.
    Names match exactly, as in graphton's map: `QWEN2.5-coder` is not `qwen2.5-coder` (provider
    model ids are case-sensitive; a value is never rewritten on a guess)."""
    spec = PROVIDERS[provider]
    _, bare = split_provider_prefix(model)
    if bare in spec.tiers:
        return spec.tiers[bare]
    return spec.aliases.get(bare, bare)


@lru_cache(maxsize=4096)
def case_hint(provider: str, model: str) -> str | None:
    """The friendly name or tier that `model` is in another case (`QWEN2.5-coder` →
    `qwen2.5-coder`), for a warning; None when there is none."""
    spec = PROVIDERS[provider]
    _, bare = split_provider_prefix(model)
    lowered = bare.lower()
    if lowered != bare and (lowered in spec.tiers or lowered in spec.aliases):
        return lowered
    return None


def key_hint(key: str) -> str:
    """`sk-ant-…f2c9`: the key's public prefix and never more than its last 4 characters."""
    if not key:
        return ""
    prefix = next((p for p, _ in _KEY_PREFIXES if key.startswith(p)), "")
    # A short key would be mostly revealed by its last 4 characters.
    tail = key[-4:] if len(key) - len(prefix) >= 12 else ""
    return f"{prefix}…{tail}"
