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


class TemporalSection(_Strict):
    address: str | None = None
    namespace: str | None = None
    task_queue: str | None = None
    max_concurrency: int | None = None


class BackendSection(_Strict):
    endpoint: str | None = None
    api_key: str | None = None


class SandboxSection(_Strict):
    type: str | None = None
    root_dir: str | None = None
    snapshot_id: str | None = None
    daytona_api_key: str | None = None


class RedisSection(_Strict):
    host: str | None = None
    port: int | None = None
    password: str | None = None


class RunnerSection(_Strict):
    """What ResolveRunnerConfig answers besides the LLM (runner.py)."""

    temporal: TemporalSection | None = None
    backend: BackendSection | None = None
    sandbox: SandboxSection | None = None
    redis: RedisSection | None = None


class ModeSection(_Strict):
    llm: LLMSection | None = None
    runner: RunnerSection | None = None


class ConfigFileModel(_Strict):
    mode: str | None = None
    llm: LLMSection | None = None
    runner: RunnerSection | None = None
    local: ModeSection | None = None
    cloud: ModeSection | None = None
