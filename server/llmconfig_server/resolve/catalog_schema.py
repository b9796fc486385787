"""The catalog file's schema (pydantic): the shipped catalog.yaml and an operator's --catalog file
have the same shape. Unknown keys and wrong types are errors; what needs the whole file (an id
given twice, a replacement that names no model) is checked in catalog_file.py."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Names that fit in an environment variable's vocabulary and a URL path: `vllm`, `lm-studio`.
# Lengths are bounded by max_length, not in the patterns: a bounded repetition ({1,2040})
# makes pydantic-core's regex compile slowly, and the schema is built at every start.
_PROVIDER_NAME = r"^[a-z][a-z0-9_-]*$"
_VARIABLE = r"^[A-Z_][A-Z0-9_]*$"
# A model id: what providers use (`claude-sonnet-5-5`, `qwen2.5-coder:7b`,
# `Qwen/Qwen3-Coder-30B-A3B-Instruct`, `ft:gpt-4o:org::id`), no spaces or control characters.
_MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
_URL = r"^https?://\S+$"

ProviderKind = Literal["anthropic", "ollama", "openai", "openai-compatible"]
Status = Literal["active", "legacy", "deprecated", "retired"]
TemperatureRule = Literal["range", "default-only", "reasoning-off"]
Tier = Literal["fast", "balanced", "powerful"]
_Name = str  # documented by the patterns below


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TemperatureRange(_Strict):
    min: float = Field(ge=0, le=10)
    max: float = Field(ge=0, le=10)
    # The value a `default-only` model takes (Anthropic's and OpenAI's default is 1).
    default: float | None = Field(default=None, ge=0, le=10)


class ProviderEntry(_Strict):
    name: str = Field(pattern=_PROVIDER_NAME, max_length=32)
    kind: ProviderKind
    display_name: str | None = Field(default=None, min_length=1, max_length=64)
    base_url: str | None = Field(default=None, pattern=_URL, max_length=2048)
    default_model: str | None = Field(default=None, pattern=_MODEL_ID, max_length=256)
    default_max_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    default_temperature: float | None = Field(default=None, ge=0, le=10)
    max_tokens_limit: int | None = Field(default=None, gt=0, le=10_000_000)
    temperature: TemperatureRange | None = None
    # The variable holding this provider's key; without it the provider needs no key.
    api_key_env: str | None = Field(default=None, pattern=_VARIABLE, max_length=64)
    api_key_flag: str | None = Field(default=None, pattern=r"^--[a-z][a-z0-9-]+$", max_length=42)
    base_url_envs: list[str] = Field(default_factory=list, max_length=8)
    host_env: str | None = Field(default=None, pattern=_VARIABLE, max_length=64)
    strip_suffix: str | None = Field(default=None, pattern=r"^/[a-z0-9/]+$", max_length=17)
    openai_suffix: str | None = Field(default=None, pattern=r"^(/[a-z0-9/]+)?$", max_length=17)
    model_families: list[str] = Field(default_factory=list, max_length=64)
    key_prefixes: list[str] = Field(default_factory=list, max_length=16)
    hosts: list[str] = Field(default_factory=list, max_length=16)
    ports: list[int] = Field(default_factory=list, max_length=16)
    closed_model_list: bool = False
    source: str | None = Field(default=None, pattern=_URL, max_length=2048)
    checked: date | None = None


class ModelEntry(_Strict):
    id: str = Field(pattern=_MODEL_ID, max_length=256)
    provider: str = Field(pattern=_PROVIDER_NAME, max_length=32)
    aliases: list[str] = Field(default_factory=list, max_length=16)
    family: str | None = Field(default=None, max_length=64)
    tier: Tier | None = None
    max_output_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    context_window: int | None = Field(default=None, gt=0, le=100_000_000)
    temperature: TemperatureRule = "range"
    status: Status = "active"
    retires_on: date | None = None
    replacement: str | None = Field(default=None, pattern=_MODEL_ID, max_length=256)
    source: str | None = Field(default=None, pattern=_URL, max_length=2048)
    checked: date | None = None


class CatalogFile(_Strict):
    providers: list[ProviderEntry] = Field(default_factory=list, max_length=64)
    models: list[ModelEntry] = Field(default_factory=list, max_length=2000)
