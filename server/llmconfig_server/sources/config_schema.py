"""llmconfig's own config file's schema (pydantic): unknown keys and wrong types are errors.

The `runner` sections are built from the runner's field table (runner_fields.py), so a new
runner field is a key of the file without another line here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from llmconfig_server.resolve.runner_fields import FIELDS, SECTIONS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LLMSection(_Strict):
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None


def _runner_section() -> Any:
    """`runner: {temporal: {address: …}, execution: {mode: …}, …}`: one key per runner field
    that has a variable of its own (derived fields, such as temporal.managed, have none)."""
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        keys: dict[str, Any] = {
            f.key: (f.python_type | None, None)
            for f in FIELDS if f.section == section and f.variable}
        model = create_model(f"{section.title()}Section", __base__=_Strict, **keys)
        sections[section] = (model | None, None)
    return create_model("RunnerSection", __base__=_Strict, **sections)


RunnerSection: Any = _runner_section()


class ModeSection(_Strict):
    llm: LLMSection | None = None
    runner: RunnerSection | None = None


class ConfigFileModel(_Strict):
    mode: str | None = None
    llm: LLMSection | None = None
    runner: RunnerSection | None = None
    local: ModeSection | None = None
    cloud: ModeSection | None = None
