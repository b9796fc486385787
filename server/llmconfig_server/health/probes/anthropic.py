"""Anthropic: GET /v1/models/{model} with x-api-key and anthropic-version. No tokens."""

from __future__ import annotations

from typing import Any

from llmconfig_server.health.probes._keyed import HostedAPI, model_segment
from llmconfig_server.resolve.rules import key_fix

API_VERSION = "2023-06-01"


def _is_model(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == "model" and bool(body.get("id"))


API = HostedAPI(
    display_name="Anthropic",
    key_variables=key_fix("ANTHROPIC_API_KEY"),
    keys_page="https://console.anthropic.com/settings/keys",
    status_page="https://status.anthropic.com",
    model_url=lambda t: f"{t.base_url}/v1/models/{model_segment(t.model)}",
    headers=lambda t: {"x-api-key": t.api_key, "anthropic-version": API_VERSION},
    is_model=_is_model,
    model_hint="use an id such as claude-sonnet-5-5, or a tier such as balanced "
    "(llmconfig models --provider anthropic lists them)",
    billing_page="https://console.anthropic.com/settings/billing",
)
probe = API.probe
