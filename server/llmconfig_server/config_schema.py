"""The config file's schema (pydantic): unknown keys and wrong types are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LLMSection(_Strict):
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class ModeSection(_Strict):
    llm: LLMSection | None = None


class ConfigFileModel(_Strict):
    mode: str | None = None
    llm: LLMSection | None = None
    local: ModeSection | None = None
    cloud: ModeSection | None = None
